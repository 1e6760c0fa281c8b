package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// fakeNet hands out loopback addresses so a fake envd can listen on them.
type fakeNet struct {
	mu   sync.Mutex
	next int
	eps  map[string]network.Endpoint
	fail error
}

func newFakeNet() *fakeNet { return &fakeNet{next: 2, eps: map[string]network.Endpoint{}} }

func (n *fakeNet) Attach(_ context.Context, id string, p network.Policy) (*network.Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return nil, n.fail
	}
	ip := netip.AddrFrom4([4]byte{127, 77, byte(n.next / 250), byte(n.next%250 + 1)})
	n.next++
	ep := network.Endpoint{ID: id, IP: ip, NetNSPath: "/run/netns/fake-" + id}
	n.eps[id] = ep
	return &ep, nil
}

func (n *fakeNet) Detach(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.eps, id)
	return nil
}

func (n *fakeNet) SetPolicy(context.Context, string, network.Policy) error { return nil }
func (n *fakeNet) CheckPolicy(network.Policy) error                        { return nil }

func (n *fakeNet) List(context.Context) ([]network.Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []network.Endpoint
	for _, ep := range n.eps {
		out = append(out, ep)
	}
	return out, nil
}

func (n *fakeNet) get(id string) (network.Endpoint, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, ok := n.eps[id]
	return ep, ok
}

func (n *fakeNet) has(id string) bool {
	_, ok := n.get(id)
	return ok
}

// fakeEnvd is a minimal envd: /health and /init.
type fakeEnvd struct {
	srv  *http.Server
	mu   sync.Mutex
	init []envdapi.Init
}

func (e *fakeEnvd) inits() []envdapi.Init {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]envdapi.Init(nil), e.init...)
}

// fakeDriver runs a fake envd per "container" on the sandbox's loopback IP.
type fakeDriver struct {
	t      *testing.T
	net    *fakeNet
	port   int
	mu     sync.Mutex
	boxes  map[string]*fakeBox
	fail   error
	kills  []string
	paused map[string]bool
	// routes, when set, adds handlers to every fake envd (e.g. the process
	// service for start-command tests).
	routes func(*http.ServeMux)
	name   string // "" = "fake"
}

type fakeBox struct {
	info runtime.Info
	envd *fakeEnvd
}

func newFakeDriver(t *testing.T, n *fakeNet) *fakeDriver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &fakeDriver{t: t, net: n, port: port, boxes: map[string]*fakeBox{}, paused: map[string]bool{}}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, b := range d.boxes {
			if b.envd != nil {
				b.envd.srv.Close()
			}
		}
	})
	return d
}

func (d *fakeDriver) Name() string {
	if d.name != "" {
		return d.name
	}
	return "fake"
}

func (d *fakeDriver) has(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.boxes[id]
	return ok
}

func (d *fakeDriver) Create(_ context.Context, spec runtime.Spec) (runtime.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return runtime.Info{}, d.fail
	}
	ep, ok := d.net.get(spec.ID)
	if !ok {
		return runtime.Info{}, errors.New("no network endpoint")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ep.IP.String(), strconv.Itoa(d.port)))
	if err != nil {
		return runtime.Info{}, err
	}
	e := &fakeEnvd{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /init", func(w http.ResponseWriter, r *http.Request) {
		var in envdapi.Init
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.init = append(e.init, in)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	if d.routes != nil {
		d.routes(mux)
	}
	e.srv = &http.Server{Handler: mux}
	go e.srv.Serve(ln)
	info := runtime.Info{ID: spec.ID, PID: 1000, State: runtime.StateRunning, Created: time.Now(), Labels: spec.Labels}
	d.boxes[spec.ID] = &fakeBox{info: info, envd: e}
	return info, nil
}

func (d *fakeDriver) Kill(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.boxes[id]
	if !ok {
		return runtime.ErrNotFound
	}
	if b.envd != nil {
		b.envd.srv.Close()
	}
	delete(d.boxes, id)
	d.kills = append(d.kills, id)
	return nil
}

func (d *fakeDriver) Info(_ context.Context, id string) (runtime.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.boxes[id]
	if !ok {
		return runtime.Info{}, runtime.ErrNotFound
	}
	return b.info, nil
}

func (d *fakeDriver) List(context.Context) ([]runtime.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []runtime.Info
	for _, b := range d.boxes {
		out = append(out, b.info)
	}
	return out, nil
}

func (d *fakeDriver) Stats(_ context.Context, id string) (runtime.Stats, error) {
	if _, err := d.Info(context.Background(), id); err != nil {
		return runtime.Stats{}, err
	}
	return runtime.Stats{MemoryBytes: 1 << 20}, nil
}

func (d *fakeDriver) Pause(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.boxes[id]
	if !ok {
		return runtime.ErrNotFound
	}
	b.info.State = runtime.StatePaused
	return nil
}

func (d *fakeDriver) Resume(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.boxes[id]
	if !ok {
		return runtime.ErrNotFound
	}
	b.info.State = runtime.StateRunning
	return nil
}

func (d *fakeDriver) box(id string) *fakeBox {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.boxes[id]
}

// setState simulates what a restart can find: a stopped container, or none.
func (d *fakeDriver) setState(id string, st runtime.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.boxes[id].info.State = st
}

func (d *fakeDriver) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b := d.boxes[id]; b != nil && b.envd != nil {
		b.envd.srv.Close()
	}
	delete(d.boxes, id)
}

// addOrphan simulates a container that no store record owns.
func (d *fakeDriver) addOrphan(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.boxes[id] = &fakeBox{info: runtime.Info{ID: id, State: runtime.StateRunning}}
}

type fakeTemplates struct{}

func (fakeTemplates) Resolve(_ context.Context, ref string) (*store.Template, error) {
	if ref == "base" || ref == "tpl0000000000000base" {
		return &store.Template{ID: "tpl0000000000000base", Aliases: []string{"base"}, RootfsDir: "/nonexistent", BuildStatus: "ready"}, nil
	}
	// A template whose sandboxes run on the second fake runtime.
	if ref == "on-other" {
		return &store.Template{ID: "tplonother", Aliases: []string{ref}, RootfsDir: "/nonexistent", BuildStatus: "ready", Runtime: "other"}, nil
	}
	// Templates of team "tb": one private, one it made public.
	if ref == "private-b" || ref == "public-b" {
		return &store.Template{ID: "tpl" + ref, TeamID: "tb", Public: ref == "public-b", Aliases: []string{ref}, RootfsDir: "/nonexistent", BuildStatus: "ready"}, nil
	}
	return nil, fmt.Errorf("template %q: %w", ref, store.ErrNotFound)
}

type harness struct {
	st  store.Store
	net *fakeNet
	drv *fakeDriver
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := newFakeNet()
	return &harness{st: st, net: n, drv: newFakeDriver(t, n)}
}

func (h *harness) orchestrator(t *testing.T) *Orchestrator {
	t.Helper()
	return h.orchestratorWith(t, nil)
}

// orchestratorWith lets a test change the configuration before New.
func (h *harness) orchestratorWith(t *testing.T, change func(*Config)) *Orchestrator {
	t.Helper()
	cfg := Config{
		Store:        h.st,
		Driver:       h.drv,
		Network:      h.net,
		Templates:    fakeTemplates{},
		EnvdBinary:   "/proc/self/exe",
		EnvdPort:     h.drv.port,
		ReapInterval: 20 * time.Millisecond,
		ReadyTimeout: 3 * time.Second,
	}
	if change != nil {
		change(&cfg)
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}
