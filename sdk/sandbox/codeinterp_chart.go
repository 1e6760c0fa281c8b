package sandbox

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// ChartType is the kind of a Chart.
type ChartType string

// Chart types the code interpreter extracts from matplotlib figures.
const (
	ChartLine          ChartType = "line"
	ChartScatter       ChartType = "scatter"
	ChartBar           ChartType = "bar"
	ChartPie           ChartType = "pie"
	ChartBoxAndWhisker ChartType = "box_and_whisker"
	ChartSuperchart    ChartType = "superchart"
	ChartUnknown       ChartType = "unknown"
)

// Chart is a chart extracted from a matplotlib figure. Fields a chart type
// does not have (or the server sent as null) are empty.
//
// Elements is a typed union decided by Type; use a type switch:
//
//	line, scatter:   PointSeries
//	bar:             BarElement
//	pie:             PieElement
//	box_and_whisker: BoxAndWhiskerElement
//	superchart:      *Chart (one per subplot)
//
// An element that does not fit its chart type's shape is kept as a
// RawElement rather than failing the whole result.
type Chart struct {
	Type   ChartType
	Title  string
	XLabel string
	YLabel string
	XUnit  string
	YUnit  string
	// XScale and YScale are matplotlib scale names: linear, datetime,
	// categorical, log, symlog, logit, function, functionlog, asinh.
	XScale string
	YScale string
	// Ticks are float64 values, or strings for datetime and categorical axes.
	XTicks      []any
	XTickLabels []string
	YTicks      []any
	YTickLabels []string
	Elements    []ChartElement
}

// ChartElement is one element of a Chart: PointSeries, BarElement,
// PieElement, BoxAndWhiskerElement, *Chart or RawElement.
type ChartElement interface {
	chartElement()
}

// PointSeries is one line or scatter series.
type PointSeries struct {
	Label  string
	Points []Point
}

// Point is one data point. X and Y are float64, or strings on datetime
// (ISO 8601) and categorical axes.
type Point struct {
	X, Y any
}

// BarElement is one bar.
type BarElement struct {
	Label string
	Group string
	Value float64
}

// PieElement is one wedge; Angle is in degrees.
type PieElement struct {
	Label  string
	Angle  float64
	Radius float64
}

// BoxAndWhiskerElement is one box.
type BoxAndWhiskerElement struct {
	Label         string
	Min           float64
	FirstQuartile float64
	Median        float64
	ThirdQuartile float64
	Max           float64
	Outliers      []float64
}

// RawElement is an element that did not match its chart type's schema.
type RawElement map[string]any

func (PointSeries) chartElement()          {}
func (BarElement) chartElement()           {}
func (PieElement) chartElement()           {}
func (BoxAndWhiskerElement) chartElement() {}
func (*Chart) chartElement()               {}
func (RawElement) chartElement()           {}

type chartWire struct {
	Type        ChartType         `json:"type"`
	Title       *string           `json:"title"`
	XLabel      *string           `json:"x_label"`
	YLabel      *string           `json:"y_label"`
	XUnit       *string           `json:"x_unit"`
	YUnit       *string           `json:"y_unit"`
	XScale      *string           `json:"x_scale"`
	YScale      *string           `json:"y_scale"`
	XTicks      []any             `json:"x_ticks"`
	XTickLabels []string          `json:"x_tick_labels"`
	YTicks      []any             `json:"y_ticks"`
	YTickLabels []string          `json:"y_tick_labels"`
	Elements    []json.RawMessage `json:"elements"`
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// UnmarshalJSON decodes the e2b/chart schema.
func (c *Chart) UnmarshalJSON(b []byte) error {
	var w chartWire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode chart: %w", err)
	}
	*c = Chart{
		Type: w.Type, Title: derefString(w.Title),
		XLabel: derefString(w.XLabel), YLabel: derefString(w.YLabel), XUnit: derefString(w.XUnit), YUnit: derefString(w.YUnit),
		XScale: derefString(w.XScale), YScale: derefString(w.YScale),
		XTicks: w.XTicks, XTickLabels: w.XTickLabels, YTicks: w.YTicks, YTickLabels: w.YTickLabels,
	}
	for _, raw := range w.Elements {
		el, err := decodeElement(w.Type, raw)
		if err != nil {
			var m RawElement
			if json.Unmarshal(raw, &m) != nil {
				continue // not even an object: nothing to keep
			}
			el = m
		}
		c.Elements = append(c.Elements, el)
	}
	return nil
}

func decodeElement(t ChartType, raw json.RawMessage) (ChartElement, error) {
	switch t {
	case ChartLine, ChartScatter:
		var w struct {
			Label  string  `json:"label"`
			Points [][]any `json:"points"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, err
		}
		s := PointSeries{Label: w.Label, Points: make([]Point, 0, len(w.Points))}
		for _, p := range w.Points {
			if len(p) != 2 {
				return nil, fmt.Errorf("point has %d coordinates", len(p))
			}
			s.Points = append(s.Points, Point{X: p[0], Y: p[1]})
		}
		return s, nil
	case ChartBar:
		var w struct {
			Label string `json:"label"`
			Group string `json:"group"`
			Value any    `json:"value"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, err
		}
		v, err := number(w.Value)
		if err != nil {
			return nil, err
		}
		return BarElement{Label: w.Label, Group: w.Group, Value: v}, nil
	case ChartPie:
		var w struct {
			Label  string  `json:"label"`
			Angle  float64 `json:"angle"`
			Radius float64 `json:"radius"`
		}
		err := json.Unmarshal(raw, &w)
		return PieElement(w), err
	case ChartBoxAndWhisker:
		var w struct {
			Label         string    `json:"label"`
			Min           float64   `json:"min"`
			FirstQuartile float64   `json:"first_quartile"`
			Median        float64   `json:"median"`
			ThirdQuartile float64   `json:"third_quartile"`
			Max           float64   `json:"max"`
			Outliers      []float64 `json:"outliers"`
		}
		err := json.Unmarshal(raw, &w)
		return BoxAndWhiskerElement(w), err
	case ChartSuperchart:
		var sub Chart
		if err := json.Unmarshal(raw, &sub); err != nil {
			return nil, err
		}
		return &sub, nil
	default:
		return nil, fmt.Errorf("no element schema for chart type %q", t)
	}
}

// number accepts a JSON number or a numeric string (some servers send bar
// values as strings).
func number(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(x, 64)
	default:
		return 0, fmt.Errorf("not a number: %v", v)
	}
}
