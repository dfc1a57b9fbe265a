package metrics

import (
	"bufio"
	"cmp"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// WritePrometheus writes every metric in the Prometheus text exposition
// format 0.0.4: families in a fixed order, series sorted by labels.
func (s *Set) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	s.writeActivations(bw)
	s.writeDuration(bw)
	s.writeCounts(bw)
	s.writeActive(bw)
	s.mu.Lock()
	funcs := slices.Clone(s.funcs)
	s.mu.Unlock()
	for _, m := range funcs {
		header(bw, m.name, m.help, m.typ)
		sample(bw, m.name, nil, m.f())
	}
	header(bw, nameBuildInfo, helpBuildInfo, "gauge")
	sample(bw, nameBuildInfo, []string{"version", s.version, "goversion", runtime.Version()}, 1)
	return bw.Flush()
}

func (s *Set) writeActivations(bw *bufio.Writer) {
	type row struct {
		k activationKey
		n uint64
	}
	var rows []row
	s.activations.Range(func(k, v any) bool {
		rows = append(rows, row{k.(activationKey), v.(*atomic.Uint64).Load()})
		return true
	})
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.k.product, b.k.product), strings.Compare(a.k.protocol, b.k.protocol),
			cmp.Compare(a.k.hresult, b.k.hresult))
	})
	header(bw, nameActivations, helpActivations, "counter")
	for _, r := range rows {
		sample(bw, nameActivations, []string{"product", r.k.product, "protocol", r.k.protocol,
			"result", resultLabel(r.k.hresult)}, float64(r.n))
	}
}

func (s *Set) writeDuration(bw *bufio.Writer) {
	h := &s.duration
	header(bw, nameDuration, helpDuration, "histogram")
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		le := "+Inf"
		if i < len(h.bounds) {
			le = formatFloat(h.bounds[i])
		}
		sample(bw, nameDuration+"_bucket", []string{"le", le}, float64(cum))
	}
	sample(bw, nameDuration+"_sum", nil, float64(h.sumNano.Load())/1e9)
	sample(bw, nameDuration+"_count", nil, float64(cum))
}

func (s *Set) writeCounts(bw *bufio.Writer) {
	header(bw, nameCurrentCount, helpCurrentCount, "gauge")
	for i := range s.counts {
		if v := s.counts[i].Load(); v > 0 {
			it := &s.table.KMSItems[i]
			sample(bw, nameCurrentCount, []string{"kms_id", it.ID.String(), "kms_name", it.Name}, float64(v-1))
		}
	}
}

func (s *Set) writeActive(bw *bufio.Writer) {
	s.mu.Lock()
	f := s.active
	s.mu.Unlock()
	if f == nil {
		return
	}
	m := f()
	keys := make([]KMSKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b KMSKey) int { return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID)) })
	header(bw, nameActiveClients, helpActiveClients, "gauge")
	for _, k := range keys {
		sample(bw, nameActiveClients, []string{"kms_id", k.ID, "kms_name", k.Name}, float64(m[k]))
	}
}

// header writes the HELP and TYPE lines of a family.
func header(bw *bufio.Writer, name, help, typ string) {
	bw.WriteString("# HELP ")
	bw.WriteString(name)
	bw.WriteByte(' ')
	bw.WriteString(helpEscaper.Replace(help))
	bw.WriteString("\n# TYPE ")
	bw.WriteString(name)
	bw.WriteByte(' ')
	bw.WriteString(typ)
	bw.WriteByte('\n')
}

// sample writes one sample line; labels alternate names and values.
func sample(bw *bufio.Writer, name string, labels []string, v float64) {
	bw.WriteString(name)
	if len(labels) > 0 {
		bw.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(labels[i])
			bw.WriteString(`="`)
			bw.WriteString(labelEscaper.Replace(labels[i+1]))
			bw.WriteByte('"')
		}
		bw.WriteByte('}')
	}
	bw.WriteByte(' ')
	bw.WriteString(formatFloat(v))
	bw.WriteByte('\n')
}

// Escaping of the text format: HELP escapes backslash and newline; label
// values also escape the double quote.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether name matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
