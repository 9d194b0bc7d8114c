package registry

import (
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// SignRequest returns the bytes of a write request to op signed by key, as
// Client sends them, for callers that speak to the registry's subjects
// directly (SubjectPrefix+op).
func SignRequest(key identity.Key, op string, payload any, now time.Time) ([]byte, error) {
	return newSignedRequest(key, op, payload, now)
}
