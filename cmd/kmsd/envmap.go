package main

import (
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"kmsd/internal/config"
)

// containerEnv marks the container image (ENV KMSD_CONTAINER=1 in the
// Dockerfile): only there are py-kms's container variables honoured.
const containerEnv = "KMSD_CONTAINER"

// containerServeArgs returns the serve arguments of a host started in the
// container image: the options meant by py-kms's container variables
// (pykmsEnvArgs) come first, so that options given on the command line
// win over them (and -L options add to IP's addresses). Outside the
// container it returns args unchanged.
func containerServeArgs(args []string, getenv func(string) string) ([]string, error) {
	if getenv(containerEnv) != "1" {
		return args, nil
	}
	extra, err := pykmsEnvArgs(getenv)
	if err != nil || len(extra) == 0 {
		return args, err
	}
	return append(extra, args...), nil
}

// pykmsEnvArgs maps the environment of py-kms's container image (its
// docker/start.py) to kmsd serve options, so that a compose file switches
// from py-kms to kmsd by changing the image name. Unset or empty variables
// add nothing; without any py-kms variable the result is empty.
//
//	IP                   space-separated listen addresses, each -L ADDR (after -P PORT);
//	                     a lone "::" whose DUALSTACK is not off adds no -L: kmsd's
//	                     default (every IPv4 and IPv6 address, IPv4 alone without IPv6)
//	DUALSTACK            1/0 (py-kms's yes/true/t/y/1, no/false/f/n/0); see IP
//	PORT                 -P PORT
//	EPID                 -a EPID (every CSVLK)
//	LCID                 -C LCID
//	HWID                 --hwid HWID; RANDOM: a random HWID, new at every start
//	CLIENT_COUNT         --client-count N
//	ACTIVATION_INTERVAL  -A MINUTES
//	RENEWAL_INTERVAL     -R MINUTES
//	LOGLEVEL             DEBUG: -v; INFO, MININFO, WARNING, ERROR, CRITICAL: kmsd's
//	                     default (one line per activation)
//	LOGFILE              STDOUT, FILESTDOUT, STDOUTOFF: -e; FILEOFF: -l /dev/null;
//	                     anything else is a file: -l PATH
//
// TZ needs no option: kmsd logs in UTC; TZ only sets the zone of the
// dashboard's local-time display. LOGSIZE, WEBUI, SQLITE, UID and GID have
// no kmsd equivalent and are ignored. A value kmsd cannot use is an error
// naming the variable.
func pykmsEnvArgs(getenv func(string) string) ([]string, error) {
	return pykmsEnvArgsRand(getenv, crand.Reader)
}

func pykmsEnvArgsRand(getenv func(string) string, random io.Reader) ([]string, error) {
	var out []string
	// add appends an option for variable name after checking that kmsd
	// accepts it, so that a bad value names the variable.
	add := func(name string, opt ...string) error {
		if _, err := config.ParseServer(opt); err != nil {
			return fmt.Errorf("py-kms variable %s=%q: %w", name, getenv(name), err)
		}
		out = append(out, opt...)
		return nil
	}
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }

	dual := true
	if v := get("DUALSTACK"); v != "" {
		b, ok := pykmsBool(v)
		if !ok {
			return nil, fmt.Errorf("py-kms variable DUALSTACK=%q: use 1 or 0", v)
		}
		dual = b
	}
	if v := get("PORT"); v != "" {
		if err := add("PORT", "-P", v); err != nil {
			return nil, err
		}
	}
	ips := strings.Fields(getenv("IP"))
	if len(ips) == 1 && (ips[0] == "::" || ips[0] == "[::]") && dual {
		ips = nil // kmsd's default listeners are py-kms's dual-stack "::"
	}
	for _, ip := range ips {
		if err := add("IP", "-L", ip); err != nil {
			return nil, err
		}
	}
	if v := get("EPID"); v != "" {
		if err := add("EPID", "-a", v); err != nil {
			return nil, err
		}
	}
	if v := get("LCID"); v != "" {
		if err := add("LCID", "-C", v); err != nil {
			return nil, err
		}
	}
	if v := get("HWID"); v != "" {
		if strings.EqualFold(v, "RANDOM") {
			var b [8]byte
			if _, err := io.ReadFull(random, b[:]); err != nil {
				return nil, fmt.Errorf("py-kms variable HWID=RANDOM: %w", err)
			}
			v = strings.ToUpper(hex.EncodeToString(b[:]))
		}
		if err := add("HWID", "--hwid", v); err != nil {
			return nil, err
		}
	}
	if v := get("CLIENT_COUNT"); v != "" {
		if err := add("CLIENT_COUNT", "--client-count", v); err != nil {
			return nil, err
		}
	}
	if v := get("ACTIVATION_INTERVAL"); v != "" {
		if err := add("ACTIVATION_INTERVAL", "-A", v); err != nil {
			return nil, err
		}
	}
	if v := get("RENEWAL_INTERVAL"); v != "" {
		if err := add("RENEWAL_INTERVAL", "-R", v); err != nil {
			return nil, err
		}
	}
	if v := get("LOGLEVEL"); v != "" {
		switch strings.ToUpper(v) {
		case "DEBUG":
			out = append(out, "-v")
		case "INFO", "MININFO", "WARNING", "ERROR", "CRITICAL":
		default:
			return nil, fmt.Errorf("py-kms variable LOGLEVEL=%q: use CRITICAL, ERROR, WARNING, INFO, MININFO or DEBUG", v)
		}
	}
	if v := get("LOGFILE"); v != "" {
		switch v {
		case "STDOUT", "FILESTDOUT", "STDOUTOFF":
			out = append(out, "-e")
		case "FILEOFF":
			out = append(out, "-l", os.DevNull)
		default:
			if err := add("LOGFILE", "-l", v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// pykmsBool reads a boolean as py-kms's _str2bool does.
func pykmsBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "yes", "true", "t", "y", "1":
		return true, true
	case "no", "false", "f", "n", "0":
		return false, true
	}
	return false, false
}
