package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a Run. Latencies cover successful activations
// only: from the start of the connect (mode new) or the request write
// (keep-alive) to the verified answer.
type Report struct {
	Target      string
	Mode        string
	Concurrency int
	PerConn     int // keep-alive only
	Protocol    uint16
	Product     int // 1-based product number
	ProductName string
	Fixed       bool // one fixed request for every activation (null host)
	Count       int  // activations asked for
	Stopped     string
	Requests    int            // activations attempted and finished
	OK          int            // verified answers
	Errors      map[string]int // failed activations by kind
	Elapsed     time.Duration
	RatePerSec  float64 // verified activations per second
	P50, P90    time.Duration
	P99, Max    time.Duration
	// Ceiling is the run against the null host in the same invocation.
	Ceiling *Report
}

// ErrorCount is the number of failed activations.
func (r *Report) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

type jsonReport struct {
	Target      string         `json:"target"`
	Mode        string         `json:"mode"`
	Concurrency int            `json:"concurrency"`
	PerConn     int            `json:"per_conn,omitempty"`
	Protocol    uint16         `json:"protocol"`
	Product     int            `json:"product"`
	ProductName string         `json:"product_name"`
	Fixed       bool           `json:"fixed_request"`
	Count       int            `json:"count"`
	Stopped     string         `json:"stopped"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      map[string]int `json:"errors"`
	ElapsedS    float64        `json:"elapsed_s"`
	Rate        float64        `json:"rate_per_s"`
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Ceiling     *Report        `json:"ceiling,omitempty"`
	Ratio       float64        `json:"rate_vs_ceiling,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MarshalJSON writes durations as milliseconds (elapsed in seconds) and,
// with a ceiling, the ratio of the two rates.
func (r Report) MarshalJSON() ([]byte, error) {
	j := jsonReport{Target: r.Target, Mode: r.Mode, Concurrency: r.Concurrency, PerConn: r.PerConn,
		Protocol: r.Protocol, Product: r.Product, ProductName: r.ProductName, Fixed: r.Fixed, Count: r.Count,
		Stopped: r.Stopped, Requests: r.Requests, OK: r.OK, Errors: r.Errors,
		ElapsedS: float64(r.Elapsed.Milliseconds()) / 1000, Rate: float64(int64(r.RatePerSec*10)) / 10,
		P50: ms(r.P50), P90: ms(r.P90), P99: ms(r.P99), Max: ms(r.Max), Ceiling: r.Ceiling}
	if j.Errors == nil {
		j.Errors = map[string]int{}
	}
	if r.Ceiling != nil && r.Ceiling.RatePerSec > 0 {
		j.Ratio = float64(int64(r.RatePerSec/r.Ceiling.RatePerSec*1000)) / 1000
	}
	return json.Marshal(j)
}

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "target      %s\n", r.Target)
	fmt.Fprintf(w, "load        mode %s", r.Mode)
	if r.PerConn > 0 {
		fmt.Fprintf(w, " (%d per connection)", r.PerConn)
	}
	fmt.Fprintf(w, ", %d workers, protocol %d, product %d %s", r.Concurrency, r.Protocol, r.Product, r.ProductName)
	if r.Fixed {
		fmt.Fprint(w, ", one fixed request")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "activations %d verified, %d failed, in %.2fs (stopped by %s)\n", r.OK, r.ErrorCount(), r.Elapsed.Seconds(), r.Stopped)
	fmt.Fprintf(w, "rate        %.1f activations/s\n", r.RatePerSec)
	fmt.Fprintf(w, "latency     p50 %s  p90 %s  p99 %s  max %s\n", fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max))
	fmt.Fprintf(w, "errors      %s\n", r.errorText())
}

func (r *Report) errorText() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Errors[k]))
	}
	return strings.Join(parts, ", ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}
