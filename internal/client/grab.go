package client

import (
	"context"
	"fmt"
	"os"
	"strings"

	"kmsd/internal/kms"
)

// GrabLine is one ini line learned from a host: the CSVLK's ini name with
// its ePID and, for V6 answers, HWID.
type GrabLine struct {
	CSVLK   string
	EPID    string
	HWID    [8]byte
	HasHWID bool
}

func (g GrabLine) String() string {
	s := g.CSVLK + " = " + g.EPID
	if g.HasHWID {
		s += " /"
		for _, b := range g.HWID {
			s += fmt.Sprintf(" %02X", b)
		}
	}
	return s
}

// Grab asks the host for the ePID and HWID of every CSVLK (kms-client.md §8):
// one request per CSVLK with its probe product, starting at protocol 6 and
// stepping down on 0x8xxxxxxx refusals; other refusals skip the CSVLK and
// an RPC failure ends the loop.
func (c *Client) Grab(ctx context.Context) ([]GrabLine, []*Result) {
	defer c.Close()
	t := c.Opt.Table
	var lines []GrabLine
	var results []*Result
	for i, k := range t.CSVLKs {
		p := t.ProbeProduct(i)
		if p < 0 {
			c.warn(fmt.Sprintf("no product uses CSVLK %s; skipped", k.IniName))
			continue
		}
		c.Opt.Product = p
		for major := uint16(6); major >= 4; major-- {
			c.Opt.Version = &kms.Version{Major: major}
			r := c.Once(ctx, i+1)
			results = append(results, r)
			if c.Report != nil {
				c.Report.Request(r, len(t.CSVLKs))
			}
			if r.Err != nil {
				return lines, results
			}
			if r.HResult>>28 == 8 && major > 4 {
				continue
			}
			if r.HResult == 0 {
				v := r.Response
				lines = append(lines, GrabLine{CSVLK: k.IniName, EPID: v.Base.EPID, HWID: v.HWID, HasHWID: v.HasHWID})
			}
			break
		}
	}
	return lines, results
}

// MergeGrabFile merges lines into the text of an existing ini file: a line
// starting (case-insensitively) with a CSVLK's ini name is replaced by the
// new line for that CSVLK (first occurrence; later duplicates are dropped),
// other lines are kept, and new CSVLKs are appended (kms-client.md §8).
func MergeGrabFile(old string, lines []GrabLine, csvlks []string) string {
	byName := map[string]GrabLine{}
	for _, l := range lines {
		byName[strings.ToLower(l.CSVLK)] = l
	}
	done := map[string]bool{}
	var out []string
	if old != "" {
		for _, line := range strings.Split(strings.TrimSuffix(old, "\n"), "\n") {
			name := matchCSVLK(line, csvlks)
			switch {
			case name == "":
				out = append(out, line)
			case done[name]:
				// a later duplicate of a CSVLK already written: dropped
			default:
				done[name] = true
				if g, ok := byName[name]; ok {
					out = append(out, g.String())
				} else {
					out = append(out, line)
				}
			}
		}
	}
	for _, l := range lines {
		if n := strings.ToLower(l.CSVLK); !done[n] {
			done[n] = true
			out = append(out, l.String())
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

func matchCSVLK(line string, csvlks []string) string {
	l := strings.ToLower(strings.TrimLeft(line, " \t"))
	for _, n := range csvlks {
		if strings.HasPrefix(l, strings.ToLower(n)) {
			return strings.ToLower(n)
		}
	}
	return ""
}

// WriteGrabFile writes the merged file; an existing file is kept as
// FILE~ (vlmcs's backup). "-" writes to standard output.
func WriteGrabFile(path string, lines []GrabLine, csvlks []string) (string, error) {
	if path == "-" {
		return MergeGrabFile("", lines, csvlks), nil
	}
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	text := MergeGrabFile(string(old), lines, csvlks)
	if exists {
		if err := os.Rename(path, path+"~"); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", err
	}
	return text, nil
}
