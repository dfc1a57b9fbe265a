//go:build !amd64 || purego

package kmscrypto

// useAESNI is false: this build has only the table-driven rounds.
var useAESNI = false

func cbcEncryptAESNI(nr int, xk, iv, buf *byte, blocks int) {
	panic("kmscrypto: no AES instructions")
}

func cbcDecryptAESNI(nr int, xk, iv, buf *byte, blocks int) {
	panic("kmscrypto: no AES instructions")
}
