package orchestrator

import "errors"

// Sentinel errors returned by the orchestrator; the API maps them to status
// codes in one place.
var (
	ErrNotFound         = errors.New("sandbox not found")
	ErrTemplateNotFound = errors.New("template not found")
	ErrConflict         = errors.New("sandbox is in a conflicting state")
	ErrInvalid          = errors.New("invalid request")
	ErrCapacity         = errors.New("no capacity for a new sandbox")
)
