package orchestrator

import (
	"fmt"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// Sentinel errors returned by the orchestrator, each of one errdefs kind,
// which the edges map to wire codes.
var (
	ErrNotFound         = fmt.Errorf("sandbox %w", errdefs.ErrNotFound)
	ErrTemplateNotFound = fmt.Errorf("template %w", errdefs.ErrNotFound)
	ErrConflict         = fmt.Errorf("sandbox is in a %w", errdefs.ErrConflict)
	ErrInvalid          = errdefs.ErrInvalid
	ErrCapacity         = fmt.Errorf("no capacity for a new sandbox: %w", errdefs.ErrUnavailable)
)
