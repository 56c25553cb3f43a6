package jumpcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"keycard/access"
)

// systemUser is the part of a v1 system user keycard reads.
type systemUser struct {
	ID                 string          `json:"_id"`
	AltID              string          `json:"id"`
	Email              string          `json:"email"`
	Username           string          `json:"username"`
	Firstname          string          `json:"firstname"`
	Lastname           string          `json:"lastname"`
	Displayname        string          `json:"displayname"`
	State              string          `json:"state"`
	Suspended          bool            `json:"suspended"`
	Activated          bool            `json:"activated"`
	AccountLocked      bool            `json:"account_locked"`
	Manager            json.RawMessage `json:"manager"`
	Department         string          `json:"department"`
	JobTitle           string          `json:"jobTitle"`
	EmployeeType       string          `json:"employeeType"`
	Company            string          `json:"company"`
	Location           string          `json:"location"`
	CostCenter         string          `json:"costCenter"`
	EmployeeIdentifier string          `json:"employeeIdentifier"`
	Attributes         []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"attributes"`
}

// userPage is the v1 list body.
type userPage struct {
	TotalCount *int          `json:"totalCount"`
	Results    *[]systemUser `json:"results"`
}

// pathSafe reports whether v can name one resource in a path.
func pathSafe(v string) bool {
	return v != "" && v != "." && v != ".." && !strings.ContainsAny(v, "/?#%\\") && !strings.ContainsFunc(v, isControlOrSpace)
}

// UserByID reads a system user (GET /api/systemusers/{id}).
func (c *Connector) UserByID(ctx context.Context, id string) (access.User, error) {
	if !pathSafe(id) {
		return access.User{}, access.Errorf(access.CodeNotFound, "JumpCloud has no user %q", id)
	}
	what := "read user " + id
	var su systemUser
	r, err := c.do(ctx, what, http.MethodGet, "/api/systemusers/"+url.PathEscape(id), nil, nil, &su)
	if err != nil {
		return access.User{}, err
	}
	switch {
	case r.status == http.StatusNotFound:
		return access.User{}, access.Errorf(access.CodeNotFound, "JumpCloud has no user %s", id)
	case r.status == http.StatusBadRequest:
		// JumpCloud answers 400 to an id that is not an ObjectId: nobody.
		return access.User{}, access.Errorf(access.CodeNotFound, "JumpCloud has no user %q (%s)", id, r.msg)
	case r.status != http.StatusOK:
		return access.User{}, c.unexpected(what, r)
	}
	u, err := toUser(su)
	if err != nil {
		return access.User{}, access.Wrap(access.CodeUnavailable, err, "JumpCloud answered with something that is not a system user (%s)", what)
	}
	return u, nil
}

func (c *Connector) unexpected(what string, r reply) error {
	return access.Wrap(access.CodeInvalid, fmt.Errorf("jumpcloud: %d %s", r.status, r.msg), "JumpCloud refused the request (%s)", what)
}

// UserByEmail finds the system user whose email is email, ignoring case.
// JumpCloud's filter values are case-sensitive, so it asks for the exact
// value, then the lower-cased one, then falls back to the search endpoint
// (case-insensitive, partial) and keeps only exact matches. Two accounts
// with the same email are a conflict, never a guess. JumpCloud keeps
// emails unique, so the first filter that finds someone is the answer.
func (c *Connector) UserByEmail(ctx context.Context, email string) (access.User, error) {
	email = strings.TrimSpace(email)
	if email == "" || strings.ContainsFunc(email, unicode.IsControl) {
		return access.User{}, access.Errorf(access.CodeNotFound, "no usable email to look up in JumpCloud")
	}
	tries := []string{email}
	if lower := strings.ToLower(email); lower != email {
		tries = append(tries, lower)
	}
	for _, v := range tries {
		u, ok, err := c.filterEmail(ctx, v)
		if err != nil || ok {
			return u, err
		}
	}
	return c.searchEmail(ctx, email)
}

func (c *Connector) filterEmail(ctx context.Context, email string) (access.User, bool, error) {
	what := "find user by email"
	var page userPage
	q := url.Values{"filter": {"email:$eq:" + email}, "limit": {"2"}}
	r, err := c.do(ctx, what, http.MethodGet, "/api/systemusers", q, nil, &page)
	if err != nil {
		return access.User{}, false, err
	}
	if r.status != http.StatusOK {
		return access.User{}, false, c.unexpected(what, r)
	}
	if page.Results == nil {
		return access.User{}, false, access.Errorf(access.CodeUnavailable, "JumpCloud answered without results (%s)", what)
	}
	users, err := toUsers(*page.Results)
	if err != nil {
		return access.User{}, false, access.Wrap(access.CodeUnavailable, err, "JumpCloud answered with something that is not a system user (%s)", what)
	}
	return pickOne(users, email)
}

// pickOne keeps the users whose email equals email ignoring case.
func pickOne(users []access.User, email string) (access.User, bool, error) {
	var found []access.User
	for _, u := range users {
		if strings.EqualFold(u.Email, email) {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return access.User{}, false, nil
	case 1:
		return found[0], true, nil
	}
	return access.User{}, false, access.Errorf(access.CodeConflict,
		"more than one JumpCloud user has email %s; keycard will not guess which one is the person", email)
}

// searchEmail is POST /api/search/systemusers with searchFilter on email,
// every page, exact (case-folded) matches only.
func (c *Connector) searchEmail(ctx context.Context, email string) (access.User, error) {
	what := "search user by email"
	var all []access.User
	seen := map[string]bool{}
	for skip, pages := 0, 0; ; pages++ {
		if pages >= maxPages {
			return access.User{}, access.Errorf(access.CodeUnavailable, "JumpCloud paging did not end (%s, %d pages)", what, pages)
		}
		body := map[string]any{
			"searchFilter": map[string]any{"searchTerm": email, "fields": []string{"email"}},
			"limit":        pageLimit,
			"skip":         skip,
		}
		var page userPage
		r, err := c.do(ctx, what, http.MethodPost, "/api/search/systemusers", nil, body, &page)
		if err != nil {
			return access.User{}, err
		}
		if r.status != http.StatusOK {
			return access.User{}, c.unexpected(what, r)
		}
		if page.Results == nil {
			return access.User{}, access.Errorf(access.CodeUnavailable, "JumpCloud answered without results (%s)", what)
		}
		users, err := toUsers(*page.Results)
		if err != nil {
			return access.User{}, access.Wrap(access.CodeUnavailable, err, "JumpCloud answered with something that is not a system user (%s)", what)
		}
		for _, u := range users {
			if seen[u.ID] {
				return access.User{}, access.Errorf(access.CodeUnavailable, "JumpCloud paging did not end (%s: user %s came back on page %d)", what, u.ID, pages+1)
			}
			seen[u.ID] = true
		}
		all = append(all, users...)
		skip += len(users)
		if len(users) < pageLimit || (page.TotalCount != nil && skip >= *page.TotalCount) {
			break
		}
	}
	u, ok, err := pickOne(all, email)
	if err != nil {
		return access.User{}, err
	}
	if !ok {
		return access.User{}, access.Errorf(access.CodeNotFound, "JumpCloud has no user with email %s", email)
	}
	return u, nil
}

// Manager reads u's manager: JumpCloud's manager field holds a user id.
// A value with '@' (an import that wrote an email) is looked up by email.
func (c *Connector) Manager(ctx context.Context, u access.User) (access.User, error) {
	ref := strings.TrimSpace(u.ManagerRef)
	if ref == "" {
		return access.User{}, access.Errorf(access.CodeNotFound, "%s has no manager in JumpCloud", u.Email)
	}
	var m access.User
	var err error
	if strings.Contains(ref, "@") {
		m, err = c.UserByEmail(ctx, ref)
	} else {
		m, err = c.UserByID(ctx, ref)
	}
	if access.CodeOf(err) == access.CodeNotFound {
		return access.User{}, access.Errorf(access.CodeNotFound, "the manager of %s (%q) is not a JumpCloud user", u.Email, ref)
	}
	return m, err
}

func toUsers(sus []systemUser) ([]access.User, error) {
	out := make([]access.User, 0, len(sus))
	for _, su := range sus {
		u, err := toUser(su)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// toUser maps a system user. It fails on an answer without an id, which
// is not a user at all.
func toUser(su systemUser) (access.User, error) {
	id := su.ID
	if id == "" {
		id = su.AltID
	}
	if id == "" {
		return access.User{}, fmt.Errorf("a system user without _id")
	}
	attrs := map[string]string{}
	for _, a := range su.Attributes {
		if a.Name == "" || a.Value == nil {
			continue
		}
		attrs[a.Name] = stringify(a.Value)
	}
	// The documented fields win over a custom attribute of the same name.
	for k, v := range map[string]string{
		"email": su.Email, "username": su.Username, "firstname": su.Firstname, "lastname": su.Lastname,
		"displayname": su.Displayname, "state": su.State, "department": su.Department, "jobTitle": su.JobTitle,
		"employeeType": su.EmployeeType, "company": su.Company, "location": su.Location,
		"costCenter": su.CostCenter, "employeeIdentifier": su.EmployeeIdentifier,
	} {
		if v != "" {
			attrs[k] = v
		}
	}
	mgr, err := managerRef(su.Manager)
	if err != nil {
		return access.User{}, err
	}
	if mgr != "" {
		attrs["manager"] = mgr
	}
	name := strings.TrimSpace(su.Displayname)
	if name == "" {
		name = strings.TrimSpace(su.Firstname + " " + su.Lastname)
	}
	if name == "" {
		name = su.Email
	}
	return access.User{
		ID:         id,
		Login:      su.Username,
		Email:      su.Email,
		Name:       name,
		Status:     status(su),
		ManagerRef: mgr,
		Attributes: attrs,
	}, nil
}

// managerRef reads manager: a user id string, or null.
func managerRef(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("manager is not a user id: %s", truncate(string(raw), 60))
	}
	return strings.TrimSpace(s), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// status maps JumpCloud's state and flags to keycard's (Okta-spelled)
// statuses: SUSPENDED or suspended is offboarded.
func status(su systemUser) access.UserStatus {
	switch {
	case su.Suspended || strings.EqualFold(su.State, "SUSPENDED"):
		return access.StatusSuspended
	case strings.EqualFold(su.State, "STAGED"):
		return access.StatusStaged
	case su.AccountLocked:
		return access.StatusLockedOut
	case strings.EqualFold(su.State, "ACTIVATED"), su.State == "" && su.Activated:
		return access.StatusActive
	}
	return access.StatusStaged
}

func stringify(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
