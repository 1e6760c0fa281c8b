// Command registry is the test suites' OCI registry on loopback: no
// registry is reachable from the machines tests run on, so it serves
// images made here from a template's tree (go-containerregistry's
// in-memory registry). Repositories under private/ need basic auth.
//
//	go run ./test/registry --addr 127.0.0.1:5099 --seed-from /var/lib/airlock-test/templates/ID/rootfs-base-4
package main

import (
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-sandbox/airlock/test/testimage"
)

const (
	user, pass = "airlock", "registry-test"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5099", "listen address")
	seed := flag.String("seed-from", "", "a template's rootfs to make the images from")
	flag.Parse()
	if *seed == "" {
		stdlog.Fatal("registry: --seed-from is required")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		stdlog.Fatal(err)
	}
	h := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
	go func() { stdlog.Fatal(http.Serve(ln, auth(h))) }()
	start := time.Now()
	img, err := testimage.FromTree(*seed)
	if err != nil {
		stdlog.Fatal(err)
	}
	for _, ref := range []string{"airlock/test:1", "private/test:1"} {
		r, err := name.ParseReference(*addr+"/"+ref, name.Insecure)
		if err != nil {
			stdlog.Fatal(err)
		}
		if err := remote.Write(r, img, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}))); err != nil {
			stdlog.Fatal(err)
		}
	}
	// The suites wait for this line.
	fmt.Printf("registry: ready on %s (seeded in %s)\n", *addr, time.Since(start).Round(time.Millisecond))
	select {}
}

// auth asks for basic credentials on private/ repositories, as a
// private registry does.
func auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="airlock-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"credentials required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
