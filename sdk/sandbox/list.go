package sandbox

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// ListOptions filters and pages GET /v2/sandboxes.
type ListOptions struct {
	Metadata     map[string]string // AND-matched against sandbox metadata
	States       []State           // default: running and paused
	Template     string            // template ID or alias
	StartedAfter time.Time
	Order        string // "asc" or "desc" (server default desc)
	Limit        int    // page size 1..100 (server default 100)
	NextToken    string // resume from a previous page
}

// Paginator walks the pages of a sandbox listing. It is not safe for
// concurrent use.
type Paginator struct {
	c       *Client
	opts    ListOptions
	token   string
	started bool
}

// List returns a paginator; no request is made until NextItems.
func (c *Client) List(opts ListOptions) *Paginator {
	return &Paginator{c: c, opts: opts, token: opts.NextToken}
}

// HasNext reports whether another page can be fetched.
func (p *Paginator) HasNext() bool { return !p.started || p.token != "" }

// NextToken is the cursor of the next page ("" after the last one).
func (p *Paginator) NextToken() string { return p.token }

// NextItems fetches the next page.
func (p *Paginator) NextItems(ctx context.Context) ([]Info, error) {
	if !p.HasNext() {
		return nil, newError(ErrSandbox, 0, "", "no more items to fetch", nil)
	}
	q := url.Values{}
	if len(p.opts.Metadata) > 0 {
		// Both official SDKs encode the pairs and send them as one value.
		m := url.Values{}
		for k, v := range p.opts.Metadata {
			m.Set(url.QueryEscape(k), url.QueryEscape(v))
		}
		q.Set("metadata", m.Encode())
	}
	if len(p.opts.States) > 0 {
		s := make([]string, len(p.opts.States))
		for i, st := range p.opts.States {
			s[i] = string(st)
		}
		q.Set("state", strings.Join(s, ","))
	}
	if p.opts.Template != "" {
		q.Set("template", p.opts.Template)
	}
	if !p.opts.StartedAfter.IsZero() {
		q.Set("startedAfter", p.opts.StartedAfter.UTC().Format(time.RFC3339Nano))
	}
	if p.opts.Order != "" {
		q.Set("order", p.opts.Order)
	}
	if p.opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.opts.Limit))
	}
	if p.token != "" {
		q.Set("nextToken", p.token)
	}
	resp, err := p.c.send(ctx, http.MethodGet, "/v2/sandboxes", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var listed []controlapi.ListedSandbox
	if err := decodeResponse(resp, &listed, "", http.StatusOK); err != nil {
		return nil, err
	}
	p.started = true
	p.token = resp.Header.Get("X-Next-Token")
	items := make([]Info, len(listed))
	for i, l := range listed {
		items[i] = listedInfo(l)
	}
	return items, nil
}

// Pages iterates over the remaining pages; iteration stops after the
// first error.
func (p *Paginator) Pages(ctx context.Context) iter.Seq2[[]Info, error] {
	return func(yield func([]Info, error) bool) {
		for p.HasNext() {
			items, err := p.NextItems(ctx)
			if !yield(items, err) || err != nil {
				return
			}
		}
	}
}

// All iterates over every remaining sandbox across pages.
func (p *Paginator) All(ctx context.Context) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		for items, err := range p.Pages(ctx) {
			if err != nil {
				yield(Info{}, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
		}
	}
}
