package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildOut  []byte
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildConnlog builds ./cmd/connlog once per test binary and returns its path.
func buildConnlog(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "connlog-deploy-test-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "connlog"), "./cmd/connlog")
		cmd.Dir = repoRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/connlog: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(buildDir, "connlog")
}

// TestComposeConnlogConfig checks that connlog accepts the configuration
// docker-compose.yml gives it: deploy/compose/connlog.yaml plus the
// service's CONNLOG_* environment (`connlog config check`).
func TestComposeConnlogConfig(t *testing.T) {
	root := repoRoot(t)
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	readYAML(t, filepath.Join(root, "docker-compose.yml"), &compose)
	svc, ok := compose.Services["connlog"]
	if !ok {
		t.Fatal("docker-compose.yml has no connlog service")
	}
	var env []string
	for k, v := range svc.Environment {
		// ${VAR:-default} → default, as docker-compose would without VAR set
		if len(v) > 3 && v[0] == '$' && v[1] == '{' {
			if i := indexOf(v, ":-"); i > 0 {
				v = v[i+2 : len(v)-1]
			}
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	if len(env) == 0 {
		t.Fatal("the connlog service sets no CONNLOG_* variables")
	}
	bin := buildConnlog(t)
	cmd := exec.Command(bin, "config", "check", "-config", filepath.Join(root, "deploy", "compose", "connlog.yaml"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	if err != nil {
		t.Fatalf("connlog config check with the compose settings %v: %v\n%s", env, err, out)
	}
}

func indexOf(s, sub string) int { return strings.Index(s, sub) }
