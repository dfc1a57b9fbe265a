//go:build amd64 && !purego

#include "textflag.h"

// The rounds of the KMS Rijndael ciphers on the AES instructions, in CBC
// mode (a single block is CBC with a zero IV). xk points to the nr+1 round
// keys as 16-byte blocks in FIPS-197 byte order: the encryption keys for
// encrypting, the equivalent inverse cipher's keys for decrypting
// (rijndael.go explains both).

// LOADARGS loads the arguments shared by both CBC routines:
// CX = nr, AX = xk, BX = iv, DX = buf, SI = blocks.
#define LOADARGS \
	MOVQ nr+0(FP), CX; \
	MOVQ xk+8(FP), AX; \
	MOVQ iv+16(FP), BX; \
	MOVQ buf+24(FP), DX; \
	MOVQ blocks+32(FP), SI

// CIPHER runs the nr rounds of key schedule AX on X0 with OP for the
// middle rounds and LAST for the final one (DI, R8 and X1 are scratch).
#define CIPHER(OP, LAST, loop) \
	MOVQ   AX, DI; \
	MOVQ   CX, R8; \
	MOVUPS (DI), X1; \
	PXOR   X1, X0; \
	ADDQ   $16, DI; \
	DECQ   R8; \
loop: \
	MOVUPS (DI), X1; \
	OP     X1, X0; \
	ADDQ   $16, DI; \
	DECQ   R8; \
	JNZ    loop; \
	MOVUPS (DI), X1; \
	LAST   X1, X0

// func hasAESNI() bool
TEXT ·hasAESNI(SB), NOSPLIT, $0-1
	MOVL $1, AX
	XORL CX, CX
	CPUID
	SHRL $25, CX // CPUID.1:ECX.AES[bit 25]
	ANDL $1, CX
	MOVB CX, ret+0(FP)
	RET

// func cbcEncryptAESNI(nr int, xk, iv, buf *byte, blocks int)
// Encrypts blocks (>= 1) 16-byte blocks of buf in place.
TEXT ·cbcEncryptAESNI(SB), NOSPLIT, $0-40
	LOADARGS
	MOVUPS (BX), X0 // chaining value

cbcEncBlock:
	MOVUPS (DX), X2
	PXOR   X2, X0
	CIPHER(AESENC, AESENCLAST, cbcEncRound)
	MOVUPS X0, (DX)
	ADDQ   $16, DX
	DECQ   SI
	JNZ    cbcEncBlock
	RET

// func cbcDecryptAESNI(nr int, xk, iv, buf *byte, blocks int)
// Decrypts blocks (>= 1) 16-byte blocks of buf in place.
TEXT ·cbcDecryptAESNI(SB), NOSPLIT, $0-40
	LOADARGS
	MOVUPS (BX), X3 // previous ciphertext block

cbcDecBlock:
	MOVUPS (DX), X0
	MOVOU  X0, X4
	CIPHER(AESDEC, AESDECLAST, cbcDecRound)
	PXOR   X3, X0
	MOVUPS X0, (DX)
	MOVOU  X4, X3
	ADDQ   $16, DX
	DECQ   SI
	JNZ    cbcDecBlock
	RET
