package nodeapi

// CmdPlanetary answers the node's planetary overlay (yggdrasil): its
// address, its /64 and its peers' state (Planetary).
const CmdPlanetary = "zos.network.planetary"

// Planetary is the answer to zos.network.planetary. A node without
// planetary peers answers an error instead.
type Planetary struct {
	// Running says the overlay process runs (it is restarted when it
	// ends); Address and Subnet are then the node's overlay address
	// (200::/7) and /64 (300::/8).
	Running bool            `json:"running"`
	Address string          `json:"address,omitempty"`
	Subnet  string          `json:"subnet,omitempty"`
	Peers   []PlanetaryPeer `json:"peers"`
}

// PlanetaryPeer is one configured or inbound peer of the overlay.
type PlanetaryPeer struct {
	URI     string `json:"uri"` // the configured URI, or inbound://<remote address>
	Up      bool   `json:"up"`
	Inbound bool   `json:"inbound,omitempty"`
	// Address is the peer's overlay address while it is up.
	Address string `json:"address,omitempty"`
	// Since is when the link last came up or went down (RFC 3339, empty:
	// never up).
	Since string `json:"since,omitempty"`
	// LastError is why the link last went down.
	LastError string `json:"last_error,omitempty"`
}
