//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// shmHeader is a read-only view of the WAL-index header at the start of
// the database's "-shm" file (https://www.sqlite.org/walformat.html,
// "The WAL-Index Header"). Every commit, from any connection in any
// process, rewrites it before COMMIT returns: iChange counts transactions,
// mxFrame is the last frame, and a checkpoint restart changes the salts.
// Comparing it with the copy taken at the last lookup is how SQLite itself
// notices that another connection wrote, done here without the file locks
// (two fcntl calls) that a read transaction or PRAGMA data_version costs.
//
// The layout is part of the file format: connections of different SQLite
// versions share one -shm file, so it does not change.
type shmHeader struct {
	f   *os.File
	mem []byte
}

func openSHMHeader(dbPath string) (*shmHeader, error) {
	f, err := os.Open(dbPath + "-shm")
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	// SQLite sizes the file in 32 KiB regions when it maps it; a shorter
	// file has not been initialised, and reading past its end would fault.
	if fi.Size() < shmHeaderBytes {
		f.Close()
		return nil, fmt.Errorf("%s-shm: %d bytes, want at least %d", dbPath, fi.Size(), shmHeaderBytes)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, shmHeaderBytes, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map %s-shm: %w", dbPath, err)
	}
	return &shmHeader{f: f, mem: mem}, nil
}

// read copies both copies of the header. Writers store the words with
// plain stores under a memory barrier; atomic loads keep this side from
// tearing a word or being reordered.
func (h *shmHeader) read(dst *[shmHeaderWords]uint32) {
	for i := range dst {
		dst[i] = atomic.LoadUint32((*uint32)(unsafe.Pointer(&h.mem[4*i])))
	}
}

func (h *shmHeader) close() error {
	err := syscall.Munmap(h.mem)
	h.mem = nil
	if cerr := h.f.Close(); err == nil {
		err = cerr
	}
	return err
}
