package web

import (
	"math"
	"strconv"
)

// chart is an inline SVG stacked bar chart. Horizontal positions are
// percentages of the SVG's width and vertical ones pixels, so the chart
// fills any width while its text keeps its size: no viewBox scaling.
type chart struct {
	Label  string // accessible summary
	Height int    // px
	Base   int    // y of the baseline
	Bars   []chartBar
	Ticks  []chartTick
	Grid   []chartGrid
	Legend []chartSeries
}

type chartBar struct {
	X, W  string // percentages
	Segs  []chartSeg
	Title string
}

type chartSeg struct {
	Y, H  int
	Class string
}

type chartTick struct {
	X, Anchor, Text string
}

type chartGrid struct {
	Y    int
	Text string
}

type chartSeries struct {
	Class, Name string
}

// chartInput is one bar: a value per series, its tooltip and an optional
// axis label under it.
type chartInput struct {
	Values []int
	Title  string
	Tick   string
}

const (
	chartTop    = 16 // room for the top grid label
	chartBottom = 20 // room for the axis labels
)

// newChart lays out bars of stacked series in a chart of height px.
func newChart(label string, height int, series []chartSeries, bars []chartInput) chart {
	c := chart{Label: label, Height: height, Base: height - chartBottom, Legend: series}
	plot := c.Base - chartTop
	peak := 0
	for _, b := range bars {
		sum := 0
		for _, v := range b.Values {
			sum += v
		}
		peak = max(peak, sum)
	}
	top := niceCeil(peak)
	c.Grid = []chartGrid{{Y: chartTop, Text: strconv.Itoa(top)}}
	if top >= 2 && top%2 == 0 {
		c.Grid = append(c.Grid, chartGrid{Y: chartTop + plot/2, Text: strconv.Itoa(top / 2)})
	}
	n := max(len(bars), 1)
	slot := 100 / float64(n)
	for i, b := range bars {
		bar := chartBar{X: pct(float64(i)*slot + slot*0.12), W: pct(slot * 0.76), Title: b.Title}
		y := c.Base
		for j, v := range b.Values {
			if v <= 0 {
				continue
			}
			h := max(1, int(math.Round(float64(v)/float64(top)*float64(plot))))
			y -= h
			bar.Segs = append(bar.Segs, chartSeg{Y: y, H: h, Class: series[j%len(series)].Class})
		}
		c.Bars = append(c.Bars, bar)
		if b.Tick != "" {
			anchor := "middle"
			switch {
			case i == 0:
				anchor = "start"
			case i == len(bars)-1:
				anchor = "end"
			}
			x := float64(i)*slot + slot/2
			if anchor == "start" {
				x = float64(i) * slot
			} else if anchor == "end" {
				x = float64(i+1) * slot
			}
			c.Ticks = append(c.Ticks, chartTick{X: pct(x), Anchor: anchor, Text: b.Tick})
		}
	}
	return c
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) + "%" }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v int) int {
	if v <= 1 {
		return 1
	}
	p := 1
	for {
		for _, m := range []int{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
		p *= 10
	}
}
