package console

import (
	"os"
	"os/exec"
	"testing"
)

// TestVendoredFilesMatchTheLockfile checks the committed copy of the chart
// library against the tarball package-lock.json pins (its sha512
// integrity), with the same script `make build` runs.
func TestVendoredFilesMatchTheLockfile(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CONNLOG_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s missing: install Node.js 20 and npm", tool)
			}
			t.Skipf("SKIPPED: %s missing", tool)
		}
	}
	out, err := exec.CommandContext(t.Context(), "node", "scripts/vendor.mjs", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("node scripts/vendor.mjs --check: %v\n%s", err, out)
	}
}
