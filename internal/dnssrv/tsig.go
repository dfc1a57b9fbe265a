package dnssrv

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// DefaultTSIGAlgorithm is the algorithm of a key given without one. (bind's
// nsupdate -y assumes hmac-md5, which RFC 8945 deprecates and miekg/dns no
// longer signs with; tsig-keygen and knot's keymgr default to hmac-sha256.)
const DefaultTSIGAlgorithm = "hmac-sha256"

// TSIGKey is a shared secret that signs the updates (RFC 8945).
type TSIGKey struct {
	Name      string // key name as the DNS server knows it, e.g. "kmsd-update" (a domain name)
	Algorithm string // hmac-sha1, hmac-sha224, hmac-sha256 (default), hmac-sha384, hmac-sha512
	Secret    string // base64
}

// String is the key in ParseTSIG's form without the secret, for logs.
func (k *TSIGKey) String() string {
	return k.algorithm() + ":" + strings.TrimSuffix(k.Name, ".") + ":(secret)"
}

// fqdnName is the key name in the canonical form TSIG uses on the wire.
func (k *TSIGKey) fqdnName() string { return dns.CanonicalName(k.Name) }

func (k *TSIGKey) algorithm() string {
	if k.Algorithm == "" {
		return DefaultTSIGAlgorithm
	}
	return strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")
}

// tsigAlgorithms maps the names accepted in keys to miekg/dns's names.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// check validates the key and returns miekg/dns's algorithm name and the
// secret in standard padded base64.
func (k *TSIGKey) check() (alg, secret string, err error) {
	name := strings.TrimSuffix(k.Name, ".")
	if name == "" {
		return "", "", errors.New("TSIG key: empty key name")
	}
	if _, ok := dns.IsDomainName(name); !ok || strings.ContainsAny(name, " \t\"") {
		return "", "", fmt.Errorf("TSIG key %q: the key name is not a valid domain name", name)
	}
	a := k.algorithm()
	alg, ok := tsigAlgorithms[a]
	if !ok {
		if a == "hmac-md5" || strings.HasPrefix(a, "hmac-md5.") {
			return "", "", fmt.Errorf("TSIG key %q: hmac-md5 is not supported (RFC 8945 deprecates it); use hmac-sha256", name)
		}
		return "", "", fmt.Errorf("TSIG key %q: unknown algorithm %q (use hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1)", name, k.Algorithm)
	}
	raw, err := decodeSecret(k.Secret)
	if err != nil {
		return "", "", fmt.Errorf("TSIG key %q: the secret is not base64", name)
	}
	if len(raw) == 0 {
		return "", "", fmt.Errorf("TSIG key %q: empty secret", name)
	}
	return alg, base64.StdEncoding.EncodeToString(raw), nil
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// ParseTSIG parses a key written as nsupdate -y takes it:
// "[algorithm:]name:base64secret", e.g.
// "hmac-sha256:kmsd-update:3q2+7w==". Without an algorithm it is
// hmac-sha256. Errors never repeat the secret.
func ParseTSIG(s string) (*TSIGKey, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	var k TSIGKey
	switch len(parts) {
	case 2:
		k = TSIGKey{Name: parts[0], Secret: parts[1]}
	case 3:
		k = TSIGKey{Algorithm: parts[0], Name: parts[1], Secret: parts[2]}
	default:
		return nil, errors.New("TSIG key: expected [algorithm:]name:base64secret (nsupdate -y form)")
	}
	for i := range parts {
		if strings.TrimSpace(parts[i]) == "" {
			return nil, errors.New("TSIG key: expected [algorithm:]name:base64secret (nsupdate -y form); a part is empty")
		}
	}
	k.Name = strings.TrimSpace(k.Name)
	k.Algorithm = strings.TrimSpace(k.Algorithm)
	if _, _, err := k.check(); err != nil {
		return nil, err
	}
	return &k, nil
}

var (
	bindKeyRe    = regexp.MustCompile(`(?s)\bkey\s+("([^"]*)"|([^\s{"]+))\s*\{(.*?)\}\s*;`)
	bindAlgRe    = regexp.MustCompile(`\balgorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	bindSecretRe = regexp.MustCompile(`\bsecret\s+"([^"]*)"\s*;`)
	knotIDRe     = regexp.MustCompile(`(?m)^\s*(?:-\s*)?id\s*:\s*"?([^"\s#]+)"?`)
	knotAlgRe    = regexp.MustCompile(`(?m)^\s*(?:-\s*)?algorithm\s*:\s*"?([A-Za-z0-9.-]+)"?`)
	knotSecretRe = regexp.MustCompile(`(?m)^\s*(?:-\s*)?secret\s*:\s*"?([A-Za-z0-9+/=]+)"?`)
	hashComment  = regexp.MustCompile(`(?m)(^|\s)#.*$`)
	slashComment = regexp.MustCompile(`(?m)(^|\s)//.*$`)
	blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// ReadTSIGFile reads one key from a file in the form bind's tsig-keygen
// writes (key "name" { algorithm hmac-sha256; secret "..."; };), the form
// knot's keymgr -t writes (key: - id: name algorithm: ... secret: ...), or
// one line in ParseTSIG's form. Errors name the file and never repeat the
// secret.
func ReadTSIGFile(path string) (*TSIGKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TSIG key file: %w", err)
	}
	k, err := parseTSIGFile(string(b))
	if err != nil {
		return nil, fmt.Errorf("TSIG key file %s: %w", path, err)
	}
	return k, nil
}

func parseTSIGFile(text string) (*TSIGKey, error) {
	// '#' never occurs in base64; "//" can, so only bind's form (whose
	// secret is quoted) drops // comments.
	text = hashComment.ReplaceAllString(text, "$1")
	bind := slashComment.ReplaceAllString(blockComment.ReplaceAllString(text, " "), "$1")
	if keys := bindKeyRe.FindAllStringSubmatch(bind, -1); len(keys) > 0 {
		if len(keys) > 1 {
			return nil, fmt.Errorf("holds %d keys; keep the one kmsd uses alone in the file", len(keys))
		}
		m := keys[0]
		k := &TSIGKey{Name: m[2] + m[3]}
		body := m[4]
		if a := bindAlgRe.FindStringSubmatch(body); a != nil {
			k.Algorithm = a[1]
		} else {
			return nil, fmt.Errorf("key %q has no algorithm clause", k.Name)
		}
		s := bindSecretRe.FindStringSubmatch(body)
		if s == nil {
			return nil, fmt.Errorf("key %q has no secret \"...\"; clause", k.Name)
		}
		k.Secret = s[1]
		if _, _, err := k.check(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if ids := knotIDRe.FindAllStringSubmatch(text, -1); len(ids) > 0 {
		if len(ids) > 1 {
			return nil, fmt.Errorf("holds %d keys; keep the one kmsd uses alone in the file", len(ids))
		}
		k := &TSIGKey{Name: ids[0][1]}
		if a := knotAlgRe.FindStringSubmatch(text); a != nil {
			k.Algorithm = a[1]
		} else {
			return nil, fmt.Errorf("key %q has no algorithm: line", k.Name)
		}
		s := knotSecretRe.FindStringSubmatch(text)
		if s == nil {
			return nil, fmt.Errorf("key %q has no secret: line", k.Name)
		}
		k.Secret = s[1]
		if _, _, err := k.check(); err != nil {
			return nil, err
		}
		return k, nil
	}
	if line := strings.TrimSpace(text); line != "" && !strings.ContainsAny(line, " \t\n{};") {
		return ParseTSIG(line)
	}
	return nil, errors.New(`no TSIG key found (expected bind's key "name" { algorithm hmac-sha256; secret "..."; };, knot's key: - id: name / algorithm: / secret:, or algorithm:name:secret)`)
}
