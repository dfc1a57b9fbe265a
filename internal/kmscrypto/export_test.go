package kmscrypto

// V4Cipher exposes the V4 Rijndael-160 cipher (kms-messages.md §5.3) to the
// black-box tests, for its known answers.
func V4Cipher() *Cipher { return v4 }
