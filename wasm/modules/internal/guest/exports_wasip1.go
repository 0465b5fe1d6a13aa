//go:build wasip1

package guest

import "unsafe"

// pinned keeps every buffer lent to the host reachable until the host
// frees it; Go's collector does not move objects, so addresses are stable.
// The host holds at most a request and an answer at a time, so a short
// list beats a map (whose hashing loops cost a call each in the host).
var pinned [][]byte

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))) }

func pin(b []byte) uint32 {
	if len(b) == 0 {
		b = make([]byte, 1)[:0]
	}
	pinned = append(pinned, b)
	return addr(b)
}

func find(ptr uint32) int {
	for i, b := range pinned {
		if addr(b) == ptr {
			return i
		}
	}
	return -1
}

//go:wasmexport opensoul_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport opensoul_alloc
func alloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	return int32(pin(make([]byte, size, size+1)))
}

//go:wasmexport opensoul_free
func free(ptr int32, _ int32) {
	if i := find(uint32(ptr)); i >= 0 {
		last := len(pinned) - 1
		pinned[i], pinned[last] = pinned[last], nil
		pinned = pinned[:last]
	}
}

//go:wasmexport opensoul_call
func call(ptr int32, size int32) int64 {
	i := find(uint32(ptr))
	if i < 0 || size < 0 || int(size) > cap(pinned[i]) {
		return 0
	}
	out := Handle(pinned[i][:size])
	return int64(pin(out))<<32 | int64(len(out))
}
