module github.com/zos-go/zos

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0
	github.com/cosmos/go-bip39 v1.0.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/crypto v0.59.0 // indirect
)
