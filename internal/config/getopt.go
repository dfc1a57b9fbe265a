// Package config turns command lines (vlmcsd and vlmcs syntax, with long
// names) and vlmcsd.ini files into plain configuration structs, once, with
// validation. It does no I/O beyond reading the files it is asked to read.
package config

import (
	"fmt"
	"strings"
)

// Option describes one command-line option.
type Option struct {
	Short   byte   // 0 when there is no short form
	Long    string // "" when there is no long form
	HasArg  bool
	ArgName string
	Help    string
	Default string
}

// parsed is one option occurrence.
type parsed struct {
	opt *Option
	val string
}

// UsageError is a bad command line; its text names the option.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// getopt parses args with getopt rules: short options may be grouped
// (-De), arguments attached (-K3, -L[::]:1688) or separate (-r 2); long
// options take --name=value or --name value. Options and positional
// arguments may be mixed; "--" ends options.
func getopt(args []string, opts []Option) ([]parsed, []string, error) {
	var out []parsed
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out, append(pos, args[i+1:]...), nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o := findLong(opts, name)
			if o == nil {
				return nil, nil, usagef("unknown option --%s", name)
			}
			if o.HasArg && !hasVal {
				if i+1 >= len(args) {
					return nil, nil, usagef("option --%s needs %s", o.Long, argName(o))
				}
				i++
				val = args[i]
			} else if !o.HasArg && hasVal {
				return nil, nil, usagef("option --%s takes no argument", o.Long)
			}
			out = append(out, parsed{o, val})
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				o := findShort(opts, a[j])
				if o == nil {
					return nil, nil, usagef("unknown option -%c", a[j])
				}
				if !o.HasArg {
					out = append(out, parsed{o, ""})
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, nil, usagef("option -%c needs %s", o.Short, argName(o))
					}
					i++
					val = args[i]
				}
				out = append(out, parsed{o, val})
				break
			}
		default:
			pos = append(pos, a)
		}
	}
	return out, pos, nil
}

func argName(o *Option) string {
	if o.ArgName != "" {
		return "an argument (" + o.ArgName + ")"
	}
	return "an argument"
}

func findShort(opts []Option, c byte) *Option {
	for i := range opts {
		if opts[i].Short == c && c != 0 {
			return &opts[i]
		}
	}
	return nil
}

func findLong(opts []Option, name string) *Option {
	for i := range opts {
		if opts[i].Long == name && name != "" {
			return &opts[i]
		}
	}
	return nil
}

// name is how messages refer to an option.
func (o *Option) name() string {
	if o.Short != 0 {
		return "-" + string(o.Short)
	}
	return "--" + o.Long
}

// Usage renders the option list for --help.
func Usage(opts []Option) string {
	var sb strings.Builder
	for i := range opts {
		o := &opts[i]
		left := "    "
		if o.Short != 0 {
			left = "  -" + string(o.Short)
			if o.Long != "" {
				left += ","
			}
		}
		if o.Long != "" {
			left += " --" + o.Long
		}
		if o.HasArg {
			left += " " + o.ArgName
		}
		help := o.Help
		if o.Default != "" {
			help += " (default " + o.Default + ")"
		}
		if len(left) < 30 {
			fmt.Fprintf(&sb, "%-30s %s\n", left, help)
		} else {
			fmt.Fprintf(&sb, "%s\n%30s %s\n", left, "", help)
		}
	}
	return sb.String()
}

// ShortUsage renders the options that have a letter in vlmcsd's usage
// layout (" -L <ADDR[:PORT]>\t\thelp"), for the vlmcsd and vlmcs
// personalities.
func ShortUsage(opts []Option) string {
	var sb strings.Builder
	for i := range opts {
		o := &opts[i]
		if o.Short == 0 || o.Short == '?' {
			continue
		}
		left := " -" + string(o.Short)
		if o.HasArg {
			left += " <" + o.ArgName + ">"
		}
		tabs := "\t\t"
		if len(left) >= 16 {
			tabs = "\t"
		}
		help := o.Help
		if o.Default != "" {
			help += " (default " + o.Default + ")"
		}
		fmt.Fprintf(&sb, "%s%s%s\n", left, tabs, help)
	}
	return sb.String()
}
