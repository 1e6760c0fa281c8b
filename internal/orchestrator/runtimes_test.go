package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"
)

// One server, two runtimes: a create may name either, a template's runtime
// is used when the create names none, the default otherwise; an unknown one
// is a 400; and each sandbox is stopped and recovered by its own driver.
func TestRuntimePerSandboxAndTemplate(t *testing.T) {
	h := newHarness(t)
	other := newFakeDriver(t, h.net)
	other.port, other.name = h.drv.port, "other"
	cfg := func(c *Config) { c.MoreDrivers = append(c.MoreDrivers, other) }
	o := h.orchestratorWith(t, cfg)
	ctx := context.Background()
	create := func(tpl, rt string) (string, error) {
		sb, err := o.Create(ctx, CreateRequest{Template: tpl, Timeout: time.Minute, AllowInternet: true, Runtime: rt})
		if err != nil {
			return "", err
		}
		return sb.ID, nil
	}
	for _, tc := range []struct{ tpl, asked, want string }{
		{"base", "", "fake"},
		{"base", "other", "other"},
		{"on-other", "", "other"},
		{"on-other", "fake", "fake"},
	} {
		id, err := create(tc.tpl, tc.asked)
		if err != nil {
			t.Fatalf("create %s runtime %q: %v", tc.tpl, tc.asked, err)
		}
		sb, err := o.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		onWant, onOther := h.drv, other
		if tc.want == "other" {
			onWant, onOther = other, h.drv
		}
		if sb.Runtime != tc.want || !onWant.has(id) || onOther.has(id) {
			t.Errorf("create %s runtime %q: recorded %q, on %s=%v, on the other=%v; want %q", tc.tpl, tc.asked,
				sb.Runtime, tc.want, onWant.has(id), onOther.has(id), tc.want)
		}
		if _, _, err := o.Stats(ctx, id); err != nil {
			t.Errorf("stats of a %s sandbox: %v", tc.want, err)
		}
		if tc.tpl == "on-other" && tc.asked == "" {
			// Survives a restart: recovery lists both drivers.
			o.Close()
			o = h.orchestratorWith(t, cfg)
			if got, err := o.Get(ctx, id); err != nil || got.State != "running" || !other.has(id) {
				t.Errorf("after restart: %v %v, on other=%v; want it adopted", got, err, other.has(id))
			}
		}
		if err := o.Kill(ctx, id); err != nil {
			t.Fatal(err)
		}
		if onWant.has(id) {
			t.Errorf("killed %s sandbox still on its driver", tc.want)
		}
	}
	if _, err := create("base", "kata"); !errors.Is(err, ErrInvalid) {
		t.Errorf("create with unknown runtime = %v, want ErrInvalid", err)
	}
	if got := o.Runtimes(); len(got) != 2 || got[0] != "fake" || got[1] != "other" {
		t.Errorf("Runtimes() = %v", got)
	}
}
