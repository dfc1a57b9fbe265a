// Package logfmt is kmsd's slog handler: the text (key=value) and JSON
// line formats of log/slog's TextHandler and JSONHandler, with times in
// UTC to the second (RFC 3339) or left out, written byte for byte as those
// handlers write them, but formatting the common attribute kinds (strings,
// integers, booleans, durations) directly into a pooled buffer. A host
// logs one line per activation, and the standard handlers spent about as
// long on that line as the host spent on the activation's cryptography.
//
// Records or attributes of other kinds (groups, arbitrary values, errors,
// times, floats, empty keys) go to the standard handler, configured the
// same way, so every line is formatted as slog would format it.
package logfmt

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Options configure a Handler.
type Options struct {
	// Level is the minimum level logged; nil means slog.LevelInfo.
	Level slog.Leveler
	// JSON selects slog's JSON format instead of its text format.
	JSON bool
	// Timestamps adds the record's time, in UTC to the second.
	Timestamps bool
}

// Handler writes one line per record to its writer with one Write call.
// It is safe for concurrent use if the writer's Write is.
type Handler struct {
	w    io.Writer
	opts Options
	std  slog.Handler // the standard handler with the same attributes
	// pre holds the attributes added by WithAttrs, formatted, each with
	// its leading separator; native is false once a group or an attribute
	// this package does not format was added, and std takes every record.
	pre    []byte
	native bool
}

// New returns a Handler writing to w.
func New(w io.Writer, opts Options) *Handler {
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	so := &slog.HandlerOptions{Level: opts.Level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
			if !opts.Timestamps {
				return slog.Attr{}
			}
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.RFC3339))
		}
		return a
	}}
	var std slog.Handler = slog.NewTextHandler(w, so)
	if opts.JSON {
		std = slog.NewJSONHandler(w, so)
	}
	return &Handler{w: w, opts: opts, std: std, native: true}
}

// Enabled reports whether records of the level are logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.std = h.std.WithAttrs(attrs)
	if h.native {
		pre := append([]byte(nil), h.pre...)
		for _, a := range attrs {
			var ok bool
			if pre, ok = h.appendAttr(pre, a); !ok {
				h2.native = false
				pre = nil
				break
			}
		}
		h2.pre = pre
	}
	return &h2
}

// WithGroup returns a handler whose later attributes are in group name;
// such handlers leave all formatting to the standard handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{w: h.w, opts: h.opts, std: h.std.WithGroup(name)}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle writes r as one line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if !h.native {
		return h.std.Handle(ctx, r)
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() {
		if cap(b) <= 16<<10 {
			*bp = b
			bufPool.Put(bp)
		}
	}()
	if h.opts.JSON {
		b = append(b, '{')
	}
	sep := false
	if h.opts.Timestamps && !r.Time.IsZero() {
		b = h.appendKey(b, slog.TimeKey, false)
		sep = true
		// An RFC 3339 time to the second in UTC needs no escaping, and in
		// the text format no quotes.
		if h.opts.JSON {
			b = append(b, '"')
		}
		b = r.Time.UTC().AppendFormat(b, time.RFC3339)
		if h.opts.JSON {
			b = append(b, '"')
		}
	}
	b = h.appendKey(b, slog.LevelKey, sep)
	b = h.appendString(b, r.Level.String())
	b = h.appendKey(b, slog.MessageKey, true)
	b = h.appendString(b, r.Message)
	b = append(b, h.pre...)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		b, ok = h.appendAttr(b, a)
		return ok
	})
	if !ok {
		return h.std.Handle(ctx, r)
	}
	if h.opts.JSON {
		b = append(b, '}')
	}
	b = append(b, '\n')
	_, err := h.w.Write(b)
	return err
}

// appendKey appends a separator (if sep) and key with the text or JSON key
// syntax.
func (h *Handler) appendKey(b []byte, key string, sep bool) []byte {
	if h.opts.JSON {
		if sep {
			b = append(b, ',')
		}
		b = appendJSONString(b, key)
		return append(b, ':')
	}
	if sep {
		b = append(b, ' ')
	}
	b = appendTextString(b, key)
	return append(b, '=')
}

func (h *Handler) appendString(b []byte, s string) []byte {
	if h.opts.JSON {
		return appendJSONString(b, s)
	}
	return appendTextString(b, s)
}

// appendAttr appends a of a kind this package formats and reports true,
// or reports false and leaves the formatting to the standard handler.
func (h *Handler) appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	v := a.Value.Resolve()
	if a.Key == "" || a.Key == slog.TimeKey {
		return b, false
	}
	switch v.Kind() {
	case slog.KindString:
		b = h.appendKey(b, a.Key, true)
		return h.appendString(b, v.String()), true
	case slog.KindInt64:
		b = h.appendKey(b, a.Key, true)
		return strconv.AppendInt(b, v.Int64(), 10), true
	case slog.KindUint64:
		b = h.appendKey(b, a.Key, true)
		return strconv.AppendUint(b, v.Uint64(), 10), true
	case slog.KindBool:
		b = h.appendKey(b, a.Key, true)
		return strconv.AppendBool(b, v.Bool()), true
	case slog.KindDuration:
		b = h.appendKey(b, a.Key, true)
		if h.opts.JSON {
			return strconv.AppendInt(b, int64(v.Duration()), 10), true
		}
		return append(b, v.Duration().String()...), true // never quoted
	}
	return b, false
}

// appendTextString appends s as the text format writes a key or string
// value: bare when it is non-empty and holds only printable, non-space
// characters other than '"' and '=', else as a Go quoted string.
func appendTextString(b []byte, s string) []byte {
	quote, ascii := textNeedsQuotes(s)
	switch {
	case !quote:
		return append(b, s...)
	case ascii:
		// Printable ASCII: Go quoting escapes only '"' and '\'.
		b = append(b, '"')
		start := 0
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '"' || c == '\\' {
				b = append(b, s[start:i]...)
				b = append(b, '\\', c)
				start = i + 1
			}
		}
		b = append(b, s[start:]...)
		return append(b, '"')
	}
	return strconv.AppendQuote(b, s)
}

// Byte classes for the text format: classQuote forces quotes, classEscape
// is escaped inside quotes, classMulti starts or continues a multi-byte
// UTF-8 sequence.
const (
	classQuote  = 1
	classEscape = 2
	classMulti  = 4
)

var textClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < ' ':
			t[c] = classQuote | classEscape
		case c == ' ', c == '=', c == '"':
			t[c] = classQuote
		case c == 0x7f: // bare, but escaped inside quotes
			t[c] = classEscape
		case c >= utf8.RuneSelf:
			t[c] = classMulti
		}
	}
	return
}()

// textNeedsQuotes reports whether s must be quoted, and whether s is all
// printable ASCII.
func textNeedsQuotes(s string) (quote, ascii bool) {
	if s == "" {
		return true, true
	}
	var acc uint8
	for i := 0; i < len(s); i++ {
		acc |= textClass[s[i]]
	}
	if acc&classMulti == 0 {
		return acc&classQuote != 0, acc&classEscape == 0
	}
	quote = acc&classQuote != 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true, false
		}
		i += n
	}
	return quote, false
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way slog's JSON format
// writes it: '"', '\\' and control characters escaped (\n, \r, \t or
// \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped, HTML
// characters left as they are.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
