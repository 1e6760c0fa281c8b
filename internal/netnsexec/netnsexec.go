// Package netnsexec runs a function on an OS thread switched into another
// network namespace; tests use it to open listeners and dial from inside
// sandboxes' and fake networks' namespaces.
package netnsexec

import (
	"errors"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run runs fn on a thread switched into the netns at path. Sockets fn
// creates stay in that netns and may be used from anywhere afterwards.
func Run(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
