// Package wire holds the small codecs shared by the rpc and kms packages:
// a bounded little-endian reader with a sticky error, Microsoft GUIDs,
// FILETIME conversion and fixed-size UTF-16LE strings.
//
// Conventions are those of shared/spec/kms-protocol.md §2.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrShort is returned by a Reader that ran past the end of its input.
var ErrShort = errors.New("wire: input too short")

// Reader reads little-endian values from a byte slice. The first read past
// the end sets a sticky error; later reads return zero values, so a decoder
// is a straight list of reads followed by one Err check.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) Reader { return Reader{buf: b} }

// Err reports the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Offset is the number of bytes consumed so far.
func (r *Reader) Offset() int { return r.off }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Rest returns the unread bytes (not copied) and consumes them.
func (r *Reader) Rest() []byte {
	b := r.buf[r.off:]
	r.off = len(r.buf)
	return b
}

// Bytes returns the next n bytes (not copied).
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.err = fmt.Errorf("%w: need %d bytes at offset %d, have %d", ErrShort, n, r.off, len(r.buf)-r.off)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

// Skip discards n bytes.
func (r *Reader) Skip(n int) { r.Bytes(n) }

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	b := r.Bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads a little-endian uint16.
func (r *Reader) U16() uint16 {
	b := r.Bytes(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

// U32 reads a little-endian uint32.
func (r *Reader) U32() uint32 {
	b := r.Bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// U64 reads a little-endian uint64.
func (r *Reader) U64() uint64 {
	b := r.Bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// GUID reads a GUID in wire order.
func (r *Reader) GUID() GUID {
	var g GUID
	copy(g[:], r.Bytes(16))
	return g
}

// GUID is a Microsoft GUID held in wire order: the first three groups are
// little-endian, the last eight bytes as written (kms-protocol.md §2).
type GUID [16]byte

// ErrBadGUID is returned by ParseGUID for text that is not 8-4-4-4-12 hex.
var ErrBadGUID = errors.New("wire: malformed GUID")

// ParseGUID parses the text form 8-4-4-4-12 (braces allowed, any case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q", ErrBadGUID, s)
	}
	var canon [16]byte
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := HexDigit(s[i])
		lo, ok2 := HexDigit(s[i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("%w: %q", ErrBadGUID, s)
		}
		canon[j] = hi<<4 | lo
		j++
		i += 2
	}
	return guidFromCanonical(canon), nil
}

// MustGUID is ParseGUID for constants; it panics on malformed text.
func MustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func guidFromCanonical(c [16]byte) GUID {
	return GUID{c[3], c[2], c[1], c[0], c[5], c[4], c[7], c[6],
		c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]}
}

// HexDigit returns the value of one hexadecimal digit of either case.
func HexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the lower-case 8-4-4-4-12 text form.
func (g GUID) String() string {
	const hexd = "0123456789abcdef"
	order := [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}
	var out [36]byte
	j := 0
	for i, k := range order {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexd[g[k]>>4]
		out[j+1] = hexd[g[k]&15]
		j += 2
	}
	return string(out[:])
}

// IsZero reports whether g is all zero.
func (g GUID) IsZero() bool { return g == GUID{} }

// FILETIME helpers: 100 ns ticks since 1601-01-01 UTC.
const (
	fileTimeEpochDelta = 11644473600 // seconds from 1601-01-01 to 1970-01-01
	ticksPerSecond     = 10_000_000
)

// FileTime converts t to a FILETIME with whole-second precision
// (as vlmcs sends it) plus the sub-second ticks.
func FileTime(t time.Time) uint64 {
	return uint64(t.Unix()+fileTimeEpochDelta)*ticksPerSecond + uint64(t.Nanosecond()/100)
}

// FileTimeSeconds converts whole Unix seconds to a FILETIME.
func FileTimeSeconds(unix int64) uint64 {
	return uint64(unix+fileTimeEpochDelta) * ticksPerSecond
}

// UnixSeconds converts a FILETIME to Unix seconds, rounding down.
func UnixSeconds(ft uint64) int64 {
	return int64(ft/ticksPerSecond) - fileTimeEpochDelta
}

// Time converts a FILETIME to a UTC time.
func Time(ft uint64) time.Time {
	return time.Unix(UnixSeconds(ft), int64(ft%ticksPerSecond)*100).UTC()
}

// PutUTF16 writes s as UTF-16LE into dst (which it zero-fills first),
// truncating to fit len(dst)/2-1 code units so a terminating NUL always
// remains. It returns the number of code units written.
func PutUTF16(dst []byte, s string) int {
	clear(dst)
	maxUnits := len(dst)/2 - 1
	n := 0
	for _, r := range s {
		units := [2]uint16{uint16(r), 0}
		k := 1
		if r > 0xFFFF {
			r1, r2 := utf16.EncodeRune(r)
			units, k = [2]uint16{uint16(r1), uint16(r2)}, 2
		}
		if n+k > maxUnits {
			break
		}
		for i := 0; i < k; i++ {
			binary.LittleEndian.PutUint16(dst[2*n:], units[i])
			n++
		}
	}
	return n
}

// UTF16String decodes UTF-16LE from b up to the first NUL unit (or the end).
func UTF16String(b []byte) string {
	n := len(b) / 2
	for i := range n {
		if b[2*i] == 0 && b[2*i+1] == 0 {
			n = i
			break
		}
	}
	// Decoded into a buffer on the stack (a workstation name, the longest
	// field, fits), so the string is the only allocation.
	var arr [256]byte
	out := arr[:0]
	for i := 0; i < n; i++ {
		r := rune(binary.LittleEndian.Uint16(b[2*i:]))
		switch {
		case !utf16.IsSurrogate(r):
		case r < 0xDC00 && i+1 < n:
			// A high surrogate: paired with a low one, or not a character.
			r = utf16.DecodeRune(r, rune(binary.LittleEndian.Uint16(b[2*i+2:])))
			if r != unicode.ReplacementChar {
				i++
			}
		default:
			r = unicode.ReplacementChar
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}

// AppendUTF16Z appends s as UTF-16LE followed by a NUL unit.
func AppendUTF16Z(dst []byte, s string) []byte {
	for _, u := range utf16.Encode([]rune(s)) {
		dst = binary.LittleEndian.AppendUint16(dst, u)
	}
	return append(dst, 0, 0)
}

// UTF16Len is the number of UTF-16 code units of s.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r > 0xFFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// ASCIILower folds the ASCII letters of s to lower case and leaves every
// other byte alone (unlike strings.ToLower, independent of Unicode case
// rules); s itself is returned when it has no upper-case ASCII letter.
func ASCIILower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
