package provision

import (
	"net/http"
	"time"

	"github.com/imcall/b2bua/registry"
)

// Trunks, DIDs and logged-in clients: requests and views shared with the
// CLI (`b2bua trunk`, `b2bua did`, `b2bua client`), and the API's handlers
// for trunks and DIDs.

// Store is what the API needs of the registry: users, terminals and
// contacts, trunks and DIDs.
type Store interface {
	registry.Store
	registry.NumberStore
	registry.CallStore
}

// TrunkRequest is a new trunk: the JSON body of POST /api/v1/trunks; the
// CLI fills it from `b2bua trunk add`.
type TrunkRequest struct {
	Name        string   `json:"name"`
	CIDRs       []string `json:"cidrs"`
	CountryCode string   `json:"country_code,omitempty"`
	Identity    string   `json:"identity,omitempty"`
}

// Trunk validates r and gives the trunk to store.
func (r TrunkRequest) Trunk() (registry.Trunk, error) {
	t := registry.Trunk{Name: r.Name, CountryCode: r.CountryCode, Identity: registry.IdentitySource(r.Identity)}
	for _, c := range r.CIDRs {
		// Each element on its own, so that "a,b" inside a JSON array is
		// refused rather than read as two ranges.
		p, err := registry.ParseCIDR(c)
		if err != nil {
			return registry.Trunk{}, err
		}
		t.CIDRs = append(t.CIDRs, p)
	}
	return registry.ValidateTrunk(t)
}

// DIDRequest is a number given to a user: the JSON body of POST
// /api/v1/dids; the CLI fills it from `b2bua did add`.
type DIDRequest struct {
	Number   string `json:"number"`
	IMID     string `json:"im_id"`
	Fallback string `json:"fallback,omitempty"`
}

// DID validates r and gives the DID to store.
func (r DIDRequest) DID() (registry.DID, error) {
	return registry.ValidateDID(registry.DID{Number: r.Number, IMID: r.IMID, Fallback: registry.Fallback(r.Fallback)})
}

// TrunkView is a trunk as the API and `--output json` show it.
type TrunkView struct {
	Name        string    `json:"name"`
	CIDRs       []string  `json:"cidrs"`
	CountryCode string    `json:"country_code"`
	Identity    string    `json:"identity"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewTrunkView gives t's view.
func NewTrunkView(t registry.Trunk) TrunkView {
	v := TrunkView{Name: t.Name, CIDRs: []string{}, CountryCode: t.CountryCode, Identity: string(t.Identity), CreatedAt: t.CreatedAt.UTC()}
	for _, p := range t.CIDRs {
		v.CIDRs = append(v.CIDRs, p.String())
	}
	return v
}

// TrunkList is the answer of GET /api/v1/trunks.
type TrunkList struct {
	Trunks []TrunkView `json:"trunks"`
}

// NewTrunkList gives the view of a list of trunks.
func NewTrunkList(ts []registry.Trunk) TrunkList {
	l := TrunkList{Trunks: []TrunkView{}}
	for _, t := range ts {
		l.Trunks = append(l.Trunks, NewTrunkView(t))
	}
	return l
}

// DIDView is a DID as the API and `--output json` show it.
type DIDView struct {
	Number    string    `json:"number"`
	IMID      string    `json:"im_id"`
	Fallback  string    `json:"fallback"`
	CreatedAt time.Time `json:"created_at"`
}

// NewDIDView gives d's view.
func NewDIDView(d registry.DID) DIDView {
	return DIDView{Number: d.Number, IMID: d.IMID, Fallback: string(d.Fallback), CreatedAt: d.CreatedAt.UTC()}
}

// DIDList is the answer of GET /api/v1/dids and GET /api/v1/users/{im}/dids.
type DIDList struct {
	DIDs []DIDView `json:"dids"`
}

// NewDIDList gives the view of a list of DIDs.
func NewDIDList(ds []registry.DID) DIDList {
	l := DIDList{DIDs: []DIDView{}}
	for _, d := range ds {
		l.DIDs = append(l.DIDs, NewDIDView(d))
	}
	return l
}

// ClientView is a client a user is logged in on (a live registration), as
// `b2bua client list --output json` shows it.
type ClientView struct {
	IMID      string    `json:"im_id"`
	Instance  string    `json:"instance"` // +sip.instance; "" for a client keyed by its contact
	Contact   string    `json:"contact"`
	Source    string    `json:"source"` // where its REGISTER came from
	Transport string    `json:"transport"`
	ExpiresAt time.Time `json:"expires_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ClientList is `b2bua client list --output json`.
type ClientList struct {
	Clients []ClientView `json:"clients"`
}

// NewClientList gives the view of a user's live bindings.
func NewClientList(bs []registry.Binding) ClientList {
	l := ClientList{Clients: []ClientView{}}
	for _, b := range bs {
		l.Clients = append(l.Clients, ClientView{IMID: b.IMID, Instance: b.Instance, Contact: b.Contact, Source: b.Source,
			Transport: b.Transport, ExpiresAt: b.Expires.UTC(), UpdatedAt: b.UpdatedAt.UTC()})
	}
	return l
}

func (a *api) listTrunks(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.store.Trunks(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewTrunkList(ts))
	return nil
}

func (a *api) createTrunk(w http.ResponseWriter, r *http.Request) error {
	var req TrunkRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	t, err := req.Trunk()
	if err != nil {
		return err
	}
	if t, err = a.store.AddTrunk(r.Context(), t); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/trunks/"+t.Name)
	writeJSON(w, http.StatusCreated, NewTrunkView(t))
	return nil
}

func (a *api) deleteTrunk(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.RemoveTrunk(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listDIDs(w http.ResponseWriter, r *http.Request) error {
	ds, err := a.store.DIDs(r.Context(), "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewDIDList(ds))
	return nil
}

func (a *api) listUserDIDs(w http.ResponseWriter, r *http.Request) error {
	u, err := a.user(r)
	if err != nil {
		return err
	}
	ds, err := a.store.DIDs(r.Context(), u.IMID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewDIDList(ds))
	return nil
}

func (a *api) createDID(w http.ResponseWriter, r *http.Request) error {
	var req DIDRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	d, err := req.DID()
	if err != nil {
		return err
	}
	if d, err = a.store.AddDID(r.Context(), d); err != nil {
		return err
	}
	// '+' is literal in a path (RFC 3986 §3.3).
	w.Header().Set("Location", "/api/v1/dids/"+d.Number)
	writeJSON(w, http.StatusCreated, NewDIDView(d))
	return nil
}

// didNumber validates the path's number ("+15550001111" or
// "%2B15550001111").
func didNumber(r *http.Request) (string, error) { return registry.ParseE164(r.PathValue("number")) }

func (a *api) getDID(w http.ResponseWriter, r *http.Request) error {
	n, err := didNumber(r)
	if err != nil {
		return err
	}
	d, err := a.store.DID(r.Context(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, NewDIDView(d))
	return nil
}

func (a *api) deleteDID(w http.ResponseWriter, r *http.Request) error {
	n, err := didNumber(r)
	if err != nil {
		return err
	}
	if err := a.store.RemoveDID(r.Context(), n); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
