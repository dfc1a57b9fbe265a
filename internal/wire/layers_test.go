package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCodecPackagesStayPure: the wire-format packages import no sockets,
// files, databases or loggers (style.md: dependencies point one way).
func TestCodecPackagesStayPure(t *testing.T) {
	pkgs := []string{"kmsd/internal/wire", "kmsd/internal/rpc", "kmsd/internal/kmscrypto", "kmsd/internal/kms", "kmsd/internal/products"}
	out, err := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}"}, pkgs...)...).Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := map[string]bool{"net": true, "os": true, "log": true, "log/slog": true, "database/sql": true,
		"net/http": true, "kmsd/internal/server": true, "kmsd/internal/store": true, "kmsd/internal/config": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			if forbidden[imp] {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
