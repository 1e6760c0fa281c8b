// Package loginpath makes Debian's /etc/profile keep the PATH a login shell
// starts with. envd runs commands in a login shell, and a template's ENV
// PATH or a command's own PATH must survive it, as on Ubuntu (E2B's
// images), whose profile sets no PATH.
package loginpath

import "bytes"

var (
	debian = []byte("if [ \"$(id -u)\" -eq 0 ]; then\n  PATH=")
	kept   = []byte("if [ -n \"${PATH-}\" ]; then\n  : # Airlock: keep the PATH the shell was given\nelif [ \"$(id -u)\" -eq 0 ]; then\n  PATH=")
)

// Patch returns profile with Debian's PATH block made conditional, and
// whether the block was there.
func Patch(profile []byte) ([]byte, bool) {
	if !bytes.Contains(profile, debian) {
		return profile, false
	}
	return bytes.Replace(profile, debian, kept, 1), true
}
