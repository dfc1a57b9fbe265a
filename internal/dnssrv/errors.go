package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// UpdateError is a failed publication or withdrawal in one domain: the DNS
// server answered with an error rcode, or did not answer.
type UpdateError struct {
	Op     string // "update" (publish) or "withdrawal"
	Domain string // the domain published in, e.g. "example.test"
	Name   string // the record's owner name, "_vlmcs._tcp.example.test."
	Server string // host:port the update went to
	Rcode  string // the answer's rcode name (NOTAUTH, REFUSED, ...); "" when nothing usable came back
	TSIG   string // the answer's TSIG error (BADKEY, BADSIG, BADTIME); "" when none
	Key    string // the TSIG key name used, "" when unsigned
	Err    error  // the transport or verification error, if any
}

func (e *UpdateError) Error() string {
	what := fmt.Sprintf("DNS %s of %s at %s", e.Op, strings.TrimSuffix(e.Name, "."), e.Server)
	if e.Rcode == "" {
		return what + " failed: " + e.transport()
	}
	code := e.Rcode
	if e.TSIG != "" {
		code += "/" + e.TSIG
	}
	verb := "refused"
	if e.Rcode == "NOERROR" {
		verb = "not confirmed"
	}
	return fmt.Sprintf("%s %s: %s (%s)", what, verb, code, e.explain())
}

func (e *UpdateError) Unwrap() error { return e.Err }

// transport describes a missing answer.
func (e *UpdateError) transport() string {
	var ne net.Error
	switch {
	case e.Err == nil:
		return "no answer"
	case errors.Is(e.Err, context.DeadlineExceeded), errors.Is(e.Err, os.ErrDeadlineExceeded),
		errors.As(e.Err, &ne) && ne.Timeout():
		return "no answer (timed out): " + e.Err.Error()
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return "nothing answers there (connection refused): " + e.Err.Error()
	case errors.Is(e.Err, dns.ErrSig), errors.Is(e.Err, dns.ErrTime), errors.Is(e.Err, dns.ErrSecret):
		return "the answer's TSIG signature did not verify: " + e.Err.Error()
	}
	return e.Err.Error()
}

// explain says in words what the rcode means for an update.
func (e *UpdateError) explain() string {
	key := ""
	if e.Key != "" {
		key = fmt.Sprintf(" %q", strings.TrimSuffix(e.Key, "."))
	}
	switch {
	case e.TSIG == "BADKEY":
		// Knot also answers BADKEY to a known key that no ACL allows.
		return "the server does not accept TSIG key" + key + ": unknown to it, another algorithm, or not allowed to update this zone"
	case e.TSIG == "BADSIG":
		return "TSIG signature not accepted: wrong secret or algorithm for key" + key
	case e.TSIG == "BADTIME":
		return "TSIG time check failed: this host's clock and the server's differ by more than 5 minutes"
	case e.TSIG != "":
		return "TSIG error"
	}
	switch e.Rcode {
	case "NOERROR":
		return "the answer's TSIG signature did not verify: " + e.transport()
	case "NOTAUTH":
		if e.Key != "" {
			return "TSIG key" + key + " not accepted for this zone, or the server is not authoritative for it"
		}
		return "the server is not authoritative for the zone, or requires a TSIG key"
	case "REFUSED":
		if e.Key != "" {
			return "the server's update policy does not allow key" + key + " to change this name"
		}
		return "the server's update policy does not allow this update; a TSIG key may be needed"
	case "NOTZONE":
		return "the name is outside the zone"
	case "NOTIMP":
		return "the server does not support dynamic update"
	case "SERVFAIL":
		return "server failure; see the DNS server's log"
	case "FORMERR":
		return "the server could not parse the update"
	case "YXDOMAIN", "YXRRSET", "NXRRSET", "NXDOMAIN":
		return "a prerequisite failed"
	}
	return "unexpected answer"
}
