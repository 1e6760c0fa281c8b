package envd

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestRunAsIsolatesThreads creates files concurrently as root, as nobody and
// outside runAs, checking each file's owner: switched credentials must never
// leak to other goroutines or outlive the call.
func TestRunAsIsolatesThreads(t *testing.T) {
	for _, mode := range []struct {
		name      string
		effective bool
	}{{"fsuid", false}, {"effective IDs (gVisor)", true}} {
		t.Run(mode.name, func(t *testing.T) {
			saved := fsidsMissing
			fsidsMissing = func() bool { return mode.effective }
			defer func() { fsidsMissing = saved }()
			testRunAsIsolatesThreads(t)
		})
	}
}

func testRunAsIsolatesThreads(t *testing.T) {
	e := newFSEnv(t)
	dir := e.path("shared")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	root, err := LookupUser("root")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, fmt.Sprintf("f%d", i))
			create := func() error {
				f, err := os.Create(p)
				if err != nil {
					return err
				}
				return f.Close()
			}
			switch i % 3 {
			case 0:
				errs <- runAs(e.nobody, create)
			case 1:
				errs <- runAs(root, create)
			default:
				errs <- create()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		uid, gid := fsOwnerOf(t, filepath.Join(dir, fmt.Sprintf("f%d", i)))
		want := uint32(0)
		if i%3 == 0 {
			want = e.nobody.UID
		}
		if uid != want || (want != 0 && gid != e.nobody.GID) {
			t.Errorf("f%d owned by %d:%d, want uid %d", i, uid, gid, want)
		}
	}
}
