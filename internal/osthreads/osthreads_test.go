package osthreads

import "testing"

func TestReserveKeepsThreads(t *testing.T) {
	before := Count()
	Reserve(24)
	after := Count()
	if after < 24 || after < before {
		t.Fatalf("threads: %d before, %d after reserving 24", before, after)
	}
	// They stay: the runtime does not end idle threads.
	Reserve(1)
	if n := Count(); n < after {
		t.Errorf("threads fell from %d to %d", after, n)
	}
}
