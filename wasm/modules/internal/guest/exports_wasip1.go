//go:build wasip1

package guest

import "unsafe"

// pinned keeps every buffer handed to the host reachable until the host
// frees it; Go's collector does not move objects, so the address stays.
var pinned = map[uint32][]byte{}

func pin(b []byte) uint32 {
	if len(b) == 0 {
		b = make([]byte, 1)[:0]
	}
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b[:1]))))
	pinned[p] = b
	return p
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
func free(ptr int32, _ int32) { delete(pinned, uint32(ptr)) }

//go:wasmexport opensoul_call
func call(ptr int32, size int32) int64 {
	in, ok := pinned[uint32(ptr)]
	if !ok || int(size) > cap(in) || size < 0 {
		return 0
	}
	out := Handle(in[:size])
	return int64(pin(out))<<32 | int64(len(out))
}
