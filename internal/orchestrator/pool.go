package orchestrator

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// The warm pool keeps sandboxes booted ahead of demand: network attached,
// container started, envd answering, but not configured. A Create for a
// pooled template with the default network policy claims one and only does
// what makes it the caller's: a fresh record (StartedAt, EndAt, tokens,
// metadata, env vars), envd's POST /init and the route.
//
// IDs: a member's sandbox ID is generated when it is booted and names its
// container and network namespace, but it is never exposed before the claim
// (a member is in no list, no route, and its record is "creating", which Get
// and List never return). To the user it is as fresh as a cold create's ID;
// no mapping between a pool ID and a user ID is needed in the store, and a
// restart's recovery cleans members up like any interrupted create.

// poolMember is a booted, unclaimed sandbox.
type poolMember struct {
	id string
	ip netip.Addr
}

type pool struct {
	o    *Orchestrator
	size int
	refs []string

	mu    sync.Mutex
	ready map[string][]poolMember // template ID → members
	tpls  []*store.Template

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// poolRetryDelay is how long the filler waits after a failed boot.
const poolRetryDelay = time.Second

func newPool(o *Orchestrator, size int, refs []string) *pool {
	if size <= 0 {
		return nil
	}
	if len(refs) == 0 {
		refs = []string{"base"}
	}
	return &pool{o: o, size: size, refs: refs, ready: map[string][]poolMember{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// start resolves the pooled templates and starts filling in the background.
func (p *pool) start(ctx context.Context) {
	if p == nil {
		return
	}
	seen := map[string]bool{}
	for _, ref := range p.refs {
		t, err := p.o.cfg.Templates.Resolve(ctx, ref)
		if err != nil {
			p.o.log.Warn("warm pool: template not available", "template", ref, "err", err)
			continue
		}
		if !seen[t.ID] {
			seen[t.ID] = true
			p.tpls = append(p.tpls, t)
		}
	}
	p.wg.Add(1)
	go p.fill()
}

// close stops filling and tears down every unclaimed member.
func (p *pool) close() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	var members []poolMember
	for _, ms := range p.ready {
		members = append(members, ms...)
	}
	p.ready = map[string][]poolMember{}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range members {
		p.o.teardown(ctx, m.id)
		p.o.finish(ctx, m.id, "warm pool drained")
	}
}

func (p *pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pool) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// fill boots members one at a time, so refilling never takes more than one
// core away from user creates.
func (p *pool) fill() {
	defer p.wg.Done()
	for {
		for _, t := range p.tpls {
			for p.short(t.ID) {
				if p.stopped() {
					return
				}
				if err := p.add(t); err != nil {
					p.o.log.Warn("warm pool: boot failed", "template", t.ID, "err", err)
					select {
					case <-p.stop:
						return
					case <-time.After(poolRetryDelay):
					}
				}
			}
		}
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
	}
}

func (p *pool) short(tplID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready[tplID]) < p.size
}

// poolPolicy is the network policy members boot with: the create default.
var poolPolicy = network.Policy{AllowInternet: true}

// add boots one member. Its record is written first, as "creating", so a
// crash at any point leaves something recovery cleans up.
func (p *pool) add(t *store.Template) error {
	o := p.o
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.ReadyTimeout+30*time.Second)
	defer cancel()
	rt, err := o.runtimeFor("", t)
	if err != nil {
		return err
	}
	sb := o.newRecord(newID(), CreateRequest{Template: t.ID, Timeout: o.cfg.MaxTimeout, AllowInternet: true, PublicTraffic: true, Runtime: rt}, t, time.Now().UTC())
	if err := o.cfg.Store.CreateSandbox(ctx, sb); err != nil {
		return err
	}
	ip, err := o.boot(ctx, sb, t, poolPolicy)
	if err != nil {
		o.teardown(ctx, sb.ID)
		o.finish(ctx, sb.ID, "warm pool boot failed: "+err.Error())
		return err
	}
	p.mu.Lock()
	p.ready[t.ID] = append(p.ready[t.ID], poolMember{id: sb.ID, ip: ip})
	p.mu.Unlock()
	return nil
}

// poolable reports whether a member (booted with the default network
// policy) can serve req; everything else in a request is applied at claim.
func poolable(req CreateRequest) bool {
	return req.AllowInternet && len(req.Network.AllowOut) == 0 && len(req.Network.DenyOut) == 0
}

// take removes a ready member of the template, if any.
func (p *pool) take(tplID string) (poolMember, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := p.ready[tplID]
	if len(ms) == 0 {
		return poolMember{}, false
	}
	m := ms[0] // oldest first: its envd has had the longest to settle
	p.ready[tplID] = ms[1:]
	return m, true
}

// claim turns a ready member into the caller's sandbox. It reports false
// when no member fits or the claim failed, and the caller then creates
// a sandbox the ordinary way.
func (p *pool) claim(ctx context.Context, req CreateRequest, t *store.Template) (*store.Sandbox, bool) {
	if p == nil || !poolable(req) {
		return nil, false
	}
	m, ok := p.take(t.ID)
	if !ok {
		return nil, false
	}
	p.kick()
	o := p.o
	tm := timingsFrom(ctx)
	tm.mark("pool_claim")
	ctx = context.WithoutCancel(ctx)
	unlock := o.lock(m.id)
	unlocked := false
	defer func() {
		if !unlocked {
			unlock()
		}
	}()

	now := time.Now().UTC()
	fresh := o.newRecord(m.id, req, t, now)
	fail := func(what string, err error) (*store.Sandbox, bool) {
		o.log.Warn("warm pool: claim failed; creating instead", "sandbox", m.id, "step", what, "err", err)
		o.teardown(ctx, m.id)
		o.finish(ctx, m.id, "warm pool claim failed: "+err.Error())
		return nil, false
	}
	if err := o.envd.Init(ctx, m.ip, o.envdConfig(fresh, t)); err != nil {
		return fail("configure envd", err)
	}
	tm.mark("envd_init")
	// A template's start command sees the caller's env vars and token, so
	// it runs at claim, as in a cold create.
	if err := o.runStartCmd(ctx, fresh, m.ip, t); err != nil {
		return fail("start command", err)
	}
	if t.StartCmd != "" {
		tm.mark("start_cmd")
	}
	// The events are appended below, off the caller's path.
	updated, err := o.transition(ctx, m.id, store.StateRunning, "", func(s *store.Sandbox) {
		*s = *fresh
		s.IP = m.ip.String()
	})
	if err != nil {
		return fail("record", err)
	}
	tm.mark("record")
	// Bookkeeping that need not delay the caller: three more synchronous
	// commits would triple the claim's store time. The sandbox lock is held
	// until they are written, so a kill's events still come after them.
	unlocked = true
	running := time.Now().UTC()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer unlock()
		if err := o.cfg.Store.TouchTemplate(ctx, t.ID, now); err != nil {
			o.log.Warn("touch template", "template", t.ID, "err", err)
		}
		// The same events as a cold create, so the log reads the same.
		for _, e := range []store.Event{
			{SandboxID: m.id, Time: now, Level: "info", Message: "creating sandbox from template " + t.ID},
			{SandboxID: m.id, Time: running, Level: "info", Message: "sandbox running"},
		} {
			if err := o.cfg.Store.AppendEvent(ctx, e); err != nil {
				o.log.Warn("append event", "sandbox", m.id, "err", err)
			}
		}
	}()
	return updated, true
}

// PoolSizes reports the ready members per template ID.
func (o *Orchestrator) PoolSizes() map[string]int {
	out := map[string]int{}
	if o.pool == nil {
		return out
	}
	o.pool.mu.Lock()
	defer o.pool.mu.Unlock()
	for id, ms := range o.pool.ready {
		out[id] = len(ms)
	}
	return out
}
