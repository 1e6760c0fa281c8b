// Package arch holds no code: its test keeps the import rules between
// Airlock's packages true (which floor may reach which).
package arch
