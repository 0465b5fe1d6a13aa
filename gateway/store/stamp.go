package store

import (
	"os"
	"syscall"
)

// Stamp fingerprints a file cheaply (size, modification time, inode) so
// that a watcher rereads it only when it looks changed: an atomic rename
// changes the inode even when size and time happen to match. A file that
// cannot be stat'ed (missing, say) has the zero Stamp, so its appearance
// is a change too.
type Stamp struct {
	size  int64
	mtime int64
	ino   uint64
}

// StampOf returns path's Stamp.
func StampOf(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	return stampOfInfo(fi)
}

func stampOfInfo(fi os.FileInfo) Stamp {
	s := Stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// StampsOf returns the Stamp of each path, in order; compare two results
// with slices.Equal.
func StampsOf(paths ...string) []Stamp {
	out := make([]Stamp, len(paths))
	for i, p := range paths {
		out[i] = StampOf(p)
	}
	return out
}
