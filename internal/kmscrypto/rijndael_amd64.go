//go:build amd64 && !purego

package kmscrypto

// useAESNI selects the AES instructions for the rounds when the processor
// has them (tests switch it off to check both paths).
var useAESNI = hasAESNI()

func hasAESNI() bool

// The functions of rijndael_amd64.s. The round keys are those of
// rijndael.encB and decB.

//go:noescape
func cbcEncryptAESNI(nr int, xk, iv, buf *byte, blocks int)

//go:noescape
func cbcDecryptAESNI(nr int, xk, iv, buf *byte, blocks int)
