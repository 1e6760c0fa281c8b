package interpreter

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// chartOf runs code and returns the e2b/chart of its only figure result.
func chartOf(t *testing.T, k Kernel, code string) (Result, map[string]any) {
	t.Helper()
	c := jrun(t, k, code, nil)
	if len(c.errs) > 0 {
		t.Fatalf("error: %+v", c.errs[0])
	}
	var figs []Result
	for _, r := range c.results {
		if r.PNG != "" {
			figs = append(figs, r)
		}
	}
	if len(figs) != 1 {
		t.Fatalf("%d figure results, want 1: %+v (stderr %q)", len(figs), c.results, c.stderr.String())
	}
	if figs[0].Chart == nil {
		t.Fatalf("figure without e2b/chart: %+v", figs[0])
	}
	return figs[0], figs[0].Chart
}

// subset reports whether every key of want equals got's (JSON-normalised).
func wantFields(t *testing.T, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	for k, v := range w {
		if !reflect.DeepEqual(got[k], v) {
			gj, _ := json.Marshal(got[k])
			t.Errorf("%s = %s, want %v", k, gj, v)
		}
	}
}

func TestCharts(t *testing.T) {
	requirePython(t)
	k := jStartKernel(t, NewPythonKernel, nil)
	jrun(t, k, "import matplotlib.pyplot as plt\nimport pandas as pd", nil)

	t.Run("line", func(t *testing.T) {
		r, ch := chartOf(t, k, `
fig, ax = plt.subplots()
ax.plot([1, 2, 3], [1, 4, 9], label="squares")
ax.plot([1, 2, 3], [1, 2, 3], label="linear")
ax.set_title("Growth")
ax.set_xlabel("Time (s)")
ax.set_ylabel("Distance [m]")
plt.show()`)
		if r.IsMainResult || !strings.HasPrefix(r.Text, "<Figure size") {
			t.Errorf("result = main %v text %q", r.IsMainResult, r.Text)
		}
		wantFields(t, ch, `{"type": "line", "title": "Growth", "x_label": "Time (s)", "y_label": "Distance [m]",
			"x_unit": "s", "y_unit": "m", "x_scale": "linear", "y_scale": "linear",
			"elements": [{"label": "squares", "points": [[1, 1], [2, 4], [3, 9]]},
			             {"label": "linear", "points": [[1, 1], [2, 2], [3, 3]]}]}`)
		ticks, _ := ch["x_ticks"].([]any)
		labels, _ := ch["x_tick_labels"].([]any)
		if len(ticks) == 0 || len(ticks) != len(labels) {
			t.Errorf("x_ticks %v, x_tick_labels %v", ticks, labels)
		}
	})
	t.Run("datetime line", func(t *testing.T) {
		_, ch := chartOf(t, k, `
plt.plot(pd.to_datetime(["2024-01-01", "2024-01-02"]), [1, 2])
plt.yscale("log")`)
		wantFields(t, ch, `{"type": "line", "title": null, "x_label": null, "x_unit": null, "x_scale": "datetime", "y_scale": "log",
			"elements": [{"label": "_child0", "points": [["2024-01-01T00:00:00", 1], ["2024-01-02T00:00:00", 2]]}]}`)
	})
	t.Run("scatter", func(t *testing.T) {
		_, ch := chartOf(t, k, `
plt.scatter([1, 2, 3], [4, 5, 6], label="pts")
plt.title("S")
plt.show()`)
		wantFields(t, ch, `{"type": "scatter", "title": "S",
			"elements": [{"label": "pts", "points": [[1, 4], [2, 5], [3, 6]]}]}`)
	})
	t.Run("bar", func(t *testing.T) {
		_, ch := chartOf(t, k, `
plt.bar(["a", "b", "c"], [3, 5, 7], label="2024")
plt.xlabel("Letter")
plt.ylabel("Count")
plt.title("Bars")`)
		wantFields(t, ch, `{"type": "bar", "title": "Bars", "x_label": "Letter", "y_label": "Count", "x_unit": null, "y_unit": null,
			"elements": [{"label": "a", "group": "2024", "value": 3}, {"label": "b", "group": "2024", "value": 5},
			             {"label": "c", "group": "2024", "value": 7}]}`)
	})
	t.Run("pie", func(t *testing.T) {
		_, ch := chartOf(t, k, `
plt.pie([1, 3], labels=["x", "y"])
plt.title("Pie")
plt.show()`)
		wantFields(t, ch, `{"type": "pie", "title": "Pie",
			"elements": [{"label": "x", "angle": 90, "radius": 1}, {"label": "y", "angle": 270, "radius": 1}]}`)
	})
	t.Run("pie angles at full precision", func(t *testing.T) {
		// float32 fractions would give 323.99999141693115 and 36.0000005364418.
		_, ch := chartOf(t, k, `
fig, ax = plt.subplots()
ax.pie([90, 10], labels=["No", "No, in blue"], autopct='%1.1f%%', startangle=90)
plt.show()`)
		wantFields(t, ch, `{"type": "pie",
			"elements": [{"label": "No", "angle": 324, "radius": 1}, {"label": "No, in blue", "angle": 36, "radius": 1}]}`)
	})
	t.Run("box", func(t *testing.T) {
		_, ch := chartOf(t, k, `
fig, ax = plt.subplots()
ax.boxplot([[1, 2, 3, 4, 5, 100], [2, 4, 6, 8]], labels=["A", "B"])
ax.set_ylabel("Value (kg)")
plt.show()`)
		wantFields(t, ch, `{"type": "box_and_whisker", "title": null, "y_label": "Value (kg)", "y_unit": "kg",
			"elements": [{"label": "A", "min": 1, "first_quartile": 2.25, "median": 3.5, "third_quartile": 4.75, "max": 5, "outliers": [100]},
			             {"label": "B", "min": 2, "first_quartile": 3.5, "median": 5, "third_quartile": 6.5, "max": 8, "outliers": []}]}`)
	})
	t.Run("superchart", func(t *testing.T) {
		_, ch := chartOf(t, k, `
fig, (a, b) = plt.subplots(1, 2)
a.plot([1, 2], [3, 4])
b.bar(["p"], [2])
fig.suptitle("Both")
plt.show()`)
		if ch["type"] != "superchart" || ch["title"] != "Both" {
			t.Fatalf("chart = %v", ch)
		}
		els, _ := ch["elements"].([]any)
		if len(els) != 2 || els[0].(map[string]any)["type"] != "line" || els[1].(map[string]any)["type"] != "bar" {
			t.Errorf("elements = %v", els)
		}
	})
	t.Run("figure as last expression", func(t *testing.T) {
		c := jrun(t, k, "fig, ax = plt.subplots()\nax.plot([1, 2])\nfig", nil)
		if len(c.results) != 1 || !c.results[0].IsMainResult || c.results[0].Chart == nil || c.results[0].PNG == "" {
			t.Errorf("results = %+v, want exactly one main figure result", c.results)
		}
	})
	t.Run("dataframe", func(t *testing.T) {
		c := jrun(t, k, `pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")], "t": pd.to_datetime(["2024-01-01", "2024-01-02 03:04:05"])})`, nil)
		r, ok := c.main()
		if !ok {
			t.Fatalf("no result: %+v %+v", c.results, c.errs)
		}
		if !strings.Contains(r.HTML, "<table") {
			t.Errorf("html = %q", r.HTML)
		}
		want := map[string]any{"a": []any{1.0, 2.0}, "b": []any{0.5, nil}, "t": []any{"2024-01-01T00:00:00", "2024-01-02T03:04:05"}}
		if !reflect.DeepEqual(r.Data, want) {
			t.Errorf("data = %v, want %v", r.Data, want)
		}
	})
}

// TestPILImages: an image shown, saved or left as the cell's value comes
// back as a PNG result, as in E2B's interpreter.
func TestPILImages(t *testing.T) {
	requirePython(t)
	k := jStartKernel(t, NewPythonKernel, nil)
	dir := t.TempDir()
	jrun(t, k, "from PIL import Image\nimage = Image.new('RGBA', (16, 16), (255, 0, 0, 255))", nil)
	for name, code := range map[string]string{
		"show":  "image.show()\nprint('done')",
		"value": "image",
		"save":  "image.save(" + pyString(dir+"/test.png") + ")",
	} {
		c := jrun(t, k, code, nil)
		if len(c.errs) != 0 || len(c.results) != 1 || !strings.HasPrefix(c.results[0].PNG, "iVBORw0KGgo") {
			t.Errorf("%s: errors %+v, %d results", name, c.errs, len(c.results))
		}
	}
	if st, err := os.Stat(dir + "/test.png"); err != nil || st.Size() == 0 {
		t.Errorf("saved file: %v", err)
	}
}
