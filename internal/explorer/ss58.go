package explorer

import (
	"encoding/hex"
	"math/big"

	"golang.org/x/crypto/blake2b"
)

// ss58Prefix is the generic Substrate address format tfchain uses.
const ss58Prefix = 42

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// accountID is the SS58 address (format 42) of a hex 32-byte public key,
// as gridproxy's accountId; "" when the key is not 32 bytes of hex.
func accountID(hexKey string) string {
	key, err := hex.DecodeString(hexKey)
	if err != nil || len(key) != 32 {
		return ""
	}
	data := append([]byte{ss58Prefix}, key...)
	h, _ := blake2b.New512(nil) // no key: cannot fail
	h.Write([]byte("SS58PRE"))
	h.Write(data)
	sum := h.Sum(nil)
	return base58(append(data, sum[:2]...))
}

func base58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	radix, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for n.Sign() > 0 {
		n.DivMod(n, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, base58Alphabet[0])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}
