package config

import (
	"fmt"
	"strconv"
	"strings"
)

// parseBool accepts true/false/on/off/yes/no/1/0, case-insensitive and
// matched as prefixes, as vlmcsd does.
func parseBool(s string) (bool, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l != "" && l != "o" {
		for _, w := range []string{"true", "on", "yes", "1"} {
			if strings.HasPrefix(w, l) || strings.HasPrefix(l, w) {
				return true, nil
			}
		}
		for _, w := range []string{"false", "off", "no", "0"} {
			if strings.HasPrefix(w, l) || strings.HasPrefix(l, w) {
				return false, nil
			}
		}
	}
	return false, fmt.Errorf("%q is not a boolean (true/false, on/off, yes/no, 1/0)", s)
}

// parseInt parses a decimal integer within [lo, hi].
func parseInt(s string, lo, hi int64) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", v, lo, hi)
	}
	return v, nil
}

// ParseInterval parses a vlmcsd time span (kms-data.md §4.3): an integer
// with an optional unit s/m/h/d/w (default minutes), in whole minutes ≥ 1.
func ParseInterval(s string) (uint32, error) {
	if s == "" {
		return 0, fmt.Errorf("empty time span")
	}
	mult := int64(60)
	num := s
	switch last := s[len(s)-1] | 0x20; last {
	case 's':
		mult = 1
	case 'm':
		mult = 60
	case 'h':
		mult = 3600
	case 'd':
		mult = 86400
	case 'w':
		mult = 604800
	default:
		if last < '0' || last > '9' {
			return 0, fmt.Errorf("%q: unknown unit (use s, m, h, d or w)", s)
		}
	}
	if num[len(num)-1] < '0' || num[len(num)-1] > '9' {
		num = num[:len(num)-1]
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a time span", s)
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > 1<<40 {
		return 0, fmt.Errorf("%q is not a time span", s)
	}
	min := v * mult / 60
	if min < 1 || min > 0xFFFFFFFF {
		return 0, fmt.Errorf("%q must be at least 1 minute", s)
	}
	return uint32(min), nil
}
