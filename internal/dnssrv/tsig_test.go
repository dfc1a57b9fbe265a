package dnssrv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret = "3q2+7wAAAAD//wAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func TestParseTSIG(t *testing.T) {
	good := []struct {
		in        string
		name, alg string
	}{
		{"kmsd-update:" + secret, "kmsd-update", ""},
		{"hmac-sha512:kmsd-update.:" + secret, "kmsd-update.", "hmac-sha512"},
		{" HMAC-SHA1.:k.example:" + secret + " ", "k.example", "HMAC-SHA1."},
		{"k:" + strings.TrimRight(secret, "="), "k", ""}, // unpadded
	}
	for _, g := range good {
		k, err := ParseTSIG(g.in)
		if err != nil || k.Name != g.name || k.Algorithm != g.alg {
			t.Errorf("%q: %+v %v", g.in, k, err)
			continue
		}
		if _, sec, err := k.check(); err != nil || sec != secret {
			t.Errorf("%q: secret %q %v", g.in, sec, err)
		}
	}
	bad := []struct{ in, want string }{
		{"", "expected [algorithm:]name:base64secret"},
		{"just-a-name", "expected [algorithm:]name:base64secret"},
		{"a:b:c:d", "expected [algorithm:]name:base64secret"},
		{"k:", "a part is empty"},
		{"hmac-md5:k:" + secret, "hmac-md5 is not supported"},
		{"hmac-sha3:k:" + secret, `unknown algorithm "hmac-sha3"`},
		{"k:not*base64", "the secret is not base64"},
		{"bad name:" + secret, "not a valid domain name"},
	}
	for _, b := range bad {
		_, err := ParseTSIG(b.in)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want %q", b.in, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "base64") && strings.Contains(err.Error(), "not*base64") {
			t.Errorf("%q: error repeats the secret: %v", b.in, err)
		}
	}
}

func TestReadTSIGFile(t *testing.T) {
	dir := t.TempDir()
	files := []struct {
		name, text, key, alg string
	}{
		{"bind.key", "# made by tsig-keygen\nkey \"kmsd-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + secret + "\";\n};\n", "kmsd-update", "hmac-sha256"},
		{"bind-comments.key", "/* block */ key kmsd.example. { // comment\n algorithm \"hmac-sha512\"; secret \"" + secret + "\"; };", "kmsd.example.", "hmac-sha512"},
		{"knot.yaml", "# hmac-sha256:kmsd:" + secret + "\nkey:\n  - id: kmsd\n    algorithm: hmac-sha384\n    secret: " + secret + "\n", "kmsd", "hmac-sha384"},
		{"line.txt", "hmac-sha224:kmsd:" + secret + "\n", "kmsd", "hmac-sha224"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		os.WriteFile(p, []byte(f.text), 0o600)
		k, err := ReadTSIGFile(p)
		if err != nil || k.Name != f.key || k.Algorithm != f.alg || k.Secret != secret {
			t.Errorf("%s: %+v %v", f.name, k, err)
		}
	}
	bad := []struct{ name, text, want string }{
		{"two.key", "key a { algorithm hmac-sha256; secret \"" + secret + "\"; };\nkey b { algorithm hmac-sha256; secret \"" + secret + "\"; };", "holds 2 keys"},
		{"noalg.key", "key a { secret \"" + secret + "\"; };", "no algorithm"},
		{"nosecret.key", "key a { algorithm hmac-sha256; };", "no secret"},
		{"md5.key", "key a { algorithm hmac-md5; secret \"" + secret + "\"; };", "hmac-md5 is not supported"},
		{"empty.key", "\n", "no TSIG key found"},
		{"garbage.key", "hello world\n", "no TSIG key found"},
	}
	for _, b := range bad {
		p := filepath.Join(dir, b.name)
		os.WriteFile(p, []byte(b.text), 0o600)
		_, err := ReadTSIGFile(p)
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q naming the file", b.name, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error repeats the secret", b.name)
		}
	}
	if _, err := ReadTSIGFile(filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing file: %v", err)
	}
	k := &TSIGKey{Name: "kmsd.", Secret: secret}
	if s := k.String(); s != "hmac-sha256:kmsd:(secret)" {
		t.Errorf("String %q", s)
	}
}
