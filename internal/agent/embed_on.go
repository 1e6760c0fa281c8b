//go:build airlock_agent

package agent

import _ "embed"

//go:embed envd.bin
var embedded []byte
