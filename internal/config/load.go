package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// LoadServer builds the host configuration from a vlmcsd command line and
// the vlmcsd.ini file it names with -i (kms-data.md §3.3):
//
//   - every option given on the command line disables the corresponding
//     ini keyword (-d and -k both count for DisconnectClientsImmediately,
//     -v and -q for LogVerbose);
//   - the ini Port, unless -P is given, is the port of every listener
//     without one: the -L options, the Listen lines and the defaults;
//   - any -L or -P on the command line discards all Listen lines;
//   - ini CSVLK lines do not replace the ePIDs of -a: they are appended
//     for the CSVLKs that no -a names.
//
// csvlks are the CSVLK ini names of the product table. readFile reads the
// ini file (nil means os.ReadFile). Unlike vlmcsd, which only warns, a
// missing or unreadable ini file is an error. Bad ini lines are skipped
// and returned as warnings. With -i - (or no -i), -h or -V no file is read.
func LoadServer(args []string, readFile func(string) ([]byte, error), csvlks []string) (Server, []Warning, error) {
	cfg, err := ParseServer(args)
	if err != nil || cfg.IniFile == "" || cfg.IniFile == "-" || cfg.Help || cfg.Version {
		return cfg, nil, err
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	data, err := readFile(cfg.IniFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return cfg, nil, fmt.Errorf("cannot read ini file %s: %v", cfg.IniFile, err)
	}
	ini, warns := ParseINI(cfg.IniFile, data, csvlks)
	opts, _, err := getopt(args, ServerOptions)
	if err != nil { // cannot happen: ParseServer accepted args
		return cfg, warns, err
	}
	cfg.applyINI(&ini, opts, csvlks)
	return cfg, warns, nil
}

// applyINI merges the ini values into c, which was built from opts.
func (c *Server) applyINI(ini *INI, opts []parsed, csvlks []string) {
	given := make(map[string]bool, len(opts))
	for _, p := range opts {
		given[p.opt.name()] = true
	}
	free := func(names ...string) bool {
		for _, n := range names {
			if given[n] {
				return false
			}
		}
		return true
	}
	pick := func(dst *bool, v *bool, names ...string) {
		if v != nil && free(names...) {
			*dst = *v
		}
	}
	pickInt := func(dst *int, v *int, name string) {
		if v != nil && free(name) {
			*dst = *v
		}
	}
	pickStr := func(dst *string, v *string, name string) {
		if v != nil && free(name) {
			*dst = *v
		}
	}

	if ini.Port != nil && free("-P") {
		c.Port = *ini.Port
		if !free("-L") {
			// -L options without a port take the ini port: rebuild them.
			c.Listen = nil
			for _, p := range opts {
				if p.opt.Short == 'L' {
					a, _ := normalizeListen(p.val, c.Port) // valid: ParseServer accepted it
					c.Listen = append(c.Listen, a)
				}
			}
		}
	}
	if free("-L", "-P") {
		for _, l := range ini.Listen {
			if a, err := normalizeListen(l, c.Port); err == nil { // ParseINI checked it
				c.Listen = append(c.Listen, a)
			}
		}
	}
	pick(&c.FreeBind, ini.FreeBind, "-F")
	pickInt(&c.PublicIPLevel, ini.PublicIPLevel, "-o")
	pickInt(&c.ExitLevel, ini.ExitLevel, "-x")
	if ini.NDR64 != nil && free("-N") {
		b := *ini.NDR64
		c.NDR64 = &b
	}
	pick(&c.BTFN, ini.BTFN, "-B")
	pickInt(&c.Randomization, ini.Randomization, "-r")
	if ini.LCID != nil && free("-C") {
		c.LCID = *ini.LCID
	}
	if ini.HostBuild != nil && free("-H") {
		c.HostBuild = *ini.HostBuild
	}
	pickInt(&c.MaxWorkers, ini.MaxWorkers, "-m")
	if ini.Timeout != nil && free("-t") {
		c.Timeout = *ini.Timeout
	}
	pick(&c.Disconnect, ini.Disconnect, "-d", "-k")
	pickStr(&c.PidFile, ini.PidFile, "-p")
	pickStr(&c.LogFile, ini.LogFile, "-l")
	pick(&c.Timestamps, ini.Timestamps, "-T")
	pick(&c.Verbose, ini.Verbose, "-v", "-q")
	pick(&c.Privacy, ini.Privacy, "-X")
	pickStr(&c.KMDFile, ini.KMDFile, "-j")
	pickInt(&c.Whitelist, ini.Whitelist, "-K")
	pick(&c.CheckTime, ini.CheckTime, "-c")
	pick(&c.Maintain, ini.Maintain, "-M")
	pick(&c.StartEmpty, ini.StartEmpty, "-E")
	if ini.ActivationInterval != nil && free("-A") {
		c.ActivationInterval = *ini.ActivationInterval
	}
	if ini.RenewalInterval != nil && free("-R") {
		c.RenewalInterval = *ini.RenewalInterval
	}
	pickStr(&c.User, ini.User, "-u")
	pickStr(&c.Group, ini.Group, "-g")
	pickStr(&c.LogFormat, ini.LogFormat, "--log-format")
	if len(ini.Allow) > 0 && free("--allow") {
		c.Allow = append(c.Allow[:0:0], ini.Allow...)
	}
	if len(ini.Deny) > 0 && free("--deny") {
		c.Deny = append(c.Deny[:0:0], ini.Deny...)
	}

	// ePIDs: -a wins per CSVLK; ini lines fill in the others.
	taken := make(map[string]bool, len(c.EPIDs))
	for _, e := range c.EPIDs {
		if e.CSVLK == AllCSVLKs {
			return // one ePID for every CSVLK given on the command line
		}
		taken[strings.ToLower(canonicalCSVLK(e.CSVLK, csvlks))] = true
	}
	for _, e := range ini.EPIDs {
		if !taken[strings.ToLower(e.CSVLK)] {
			c.EPIDs = append(c.EPIDs, e)
		}
	}
}

// canonicalCSVLK returns the CSVLK ini name that name (from -a) refers to:
// the one equal to it ignoring case, else the first that it starts with,
// else name itself.
func canonicalCSVLK(name string, csvlks []string) string {
	for _, c := range csvlks {
		if strings.EqualFold(c, name) {
			return c
		}
	}
	if c := iniMatchCSVLK(name, csvlks); c != "" {
		return c
	}
	return name
}
