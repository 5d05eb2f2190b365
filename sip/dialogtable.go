package sip

import "sync"

// dialogID identifies a dialog for matching the requests its peer sends
// on it: the Call-ID and our tag, the To tag of the peer's requests (RFC
// 3261 §12). A struct rather than a joined string, so a lookup builds
// nothing.
type dialogID struct{ callID, localTag string }

// dialogShards spreads the dialog table over this many locks: every
// in-dialog request (ACK, BYE, re-INVITE) looks its session up, from any
// of the UDP readers' goroutines at once.
const dialogShards = 64

// dialogTable maps dialogs to their sessions, sharded by a hash of the
// key so that lookups from many goroutines do not queue on one lock.
type dialogTable struct {
	shards [dialogShards]dialogShard
}

type dialogShard struct {
	mu sync.RWMutex
	m  map[dialogID]*session
}

func newDialogTable() *dialogTable {
	t := &dialogTable{}
	for i := range t.shards {
		t.shards[i].m = map[dialogID]*session{}
	}
	return t
}

// shard is FNV-1a over both parts of the key, without building a string.
func (t *dialogTable) shard(k dialogID) *dialogShard {
	h := uint32(2166136261)
	for i := 0; i < len(k.callID); i++ {
		h = (h ^ uint32(k.callID[i])) * 16777619
	}
	for i := 0; i < len(k.localTag); i++ {
		h = (h ^ uint32(k.localTag[i])) * 16777619
	}
	return &t.shards[h%dialogShards]
}

func (t *dialogTable) get(k dialogID) *session {
	sh := t.shard(k)
	sh.mu.RLock()
	c := sh.m[k]
	sh.mu.RUnlock()
	return c
}

func (t *dialogTable) set(k dialogID, c *session) {
	sh := t.shard(k)
	sh.mu.Lock()
	sh.m[k] = c
	sh.mu.Unlock()
}

// remove drops k if it still names c.
func (t *dialogTable) remove(k dialogID, c *session) {
	sh := t.shard(k)
	sh.mu.Lock()
	if sh.m[k] == c {
		delete(sh.m, k)
	}
	sh.mu.Unlock()
}
