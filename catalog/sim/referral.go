package sim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Collections of the referral apps.
const (
	colRRMembers   = "rr/members"
	colRRPrograms  = "rr/programs"
	colRRReferrals = "rr/referrals"
	colRRRewards   = "rr/rewards"
	colRRHooks     = "rr/hooks"
	colRRActions   = "rr/actions"
	colRZContacts  = "rz/contacts"
	colRZRewards   = "rz/loyalty-rewards"
	colRZRedeems   = "rz/redeems"
	colRZNotes     = "rz/notes"
	colRZTasks     = "rz/tasks"
	colRZVisits    = "rz/visits"
)

// rrSort reads Referral Rock's sort parameter: *_Asc is oldest first, the
// default (Create_Dt_Desc) newest first.
func rrSort(c *call) bool { return !strings.HasSuffix(c.query("sort"), "_Asc") }

// rrMatch applies Referral Rock's query and dateFrom/dateTo filters.
func rrMatch(created string) func(c *call, o *object) bool {
	return func(c *call, o *object) bool {
		if q := strings.ToLower(c.query("query")); q != "" {
			hit := false
			for _, f := range []string{"firstName", "lastName", "fullName", "email", "displayName", "recipientName"} {
				if strings.Contains(lower(o.data[f]), q) {
					hit = true
				}
			}
			if !hit {
				return false
			}
		}
		if c.query("showDisabled") != "true" && o.data["disabledFlag"] == true {
			return false
		}
		t, ok := timeInput(fmtAny(o.data[created]))
		if !ok {
			return true
		}
		if from, ok := timeInput(c.query("dateFrom")); ok && t.Before(from) {
			return false
		}
		if to, ok := timeInput(c.query("dateTo")); ok && t.After(to) {
			return false
		}
		return true
	}
}

func init() {
	rr := map[string]*gen{
		"referralrock.members.new": {act: "list", col: colRRMembers, sortBy: rrSort, match: rrMatch("createDt"),
			filters: map[string]string{"programId": "programId"}},
		"referralrock.members.create": {act: "create", col: colRRMembers, ids: "guid", created: "createDt",
			defaults: memberDefaults, mutate: memberFields, result: map[string]any{"message": "Member created"},
			status: http.StatusCreated, event: "MemberAdd"},
		"referralrock.programs.list": {act: "list", col: colRRPrograms, filters: map[string]string{"programId": "id"}},
		"referralrock.referrals.new": {act: "list", col: colRRReferrals, sortBy: rrSort, match: rrMatch("createDate"),
			filters: map[string]string{"programId": "programId", "memberId": "referringMemberId", "status": "status"}},
		"referralrock.referrals.create": {act: "create", col: colRRReferrals, ids: "guid", created: "createDate",
			updated: "updateDate", defaults: referralDefaults, mutate: referralFields,
			result: map[string]any{"message": "Referral created"}, status: http.StatusCreated, event: "ReferralAdd"},
		"referralrock.referrals.add_action": {act: "create", col: colRRActions, ids: "guid", created: "createDate",
			mutate: findReferral, result: map[string]any{"message": "Referral action added"}, status: http.StatusOK},
		"referralrock.rewards.new": {act: "list", col: colRRRewards, sortBy: rrSort, match: rrMatch("createDate"),
			filters: map[string]string{"programId": "programId", "memberId": "memberId", "status": "status"}},
		"referralrock.rewards.issue": {act: "update", col: colRRRewards, idParam: "rewardId", fields: []string{"note"},
			updated: "updateDate", mutate: issueReward, respond: func(c *call, o *object) any {
				return withField(wrapOne("reward", o.raw), "resultInfo", map[string]any{"status": "Success", "message": ""})
			}},
		"referralrock.webhooks.subscribe": {act: "create", col: colRRHooks, ids: "guid", idField: "web_hook_id",
			respond: func(c *call, o *object) any { return map[string]any{"web_hook_id": o.id} }},
		"referralrock.webhooks.unsubscribe": {act: "delete", col: colRRHooks, idField: "web_hook_id", idParam: "web_hook_id",
			result: map[string]any{"message": "Webhook removed"}},

		"referrizer.contacts.new": {act: "list", col: colRZContacts, filters: map[string]string{"email": "email", "phone": "phone"}},
		"referrizer.contacts.get": {act: "get", col: colRZContacts, idParam: "contactId"},
		"referrizer.tasks.new": {act: "list", col: colRZTasks,
			filters: map[string]string{"externalId": "externalId", "contactId": "contactId"}},
		"referrizer.tasks.update":             {act: "update", col: colRZTasks, idParam: "taskId", updated: "updatedAt"},
		"referrizer.loyalty_rewards.new":      {act: "list", col: colRZRewards},
		"referrizer.loyalty_rewards.get":      {act: "get", col: colRZRewards, idParam: "loyaltyRewardId"},
		"referrizer.loyalty_rewards.redeemed": {act: "list", col: colRZRedeems},
		"referrizer.loyalty_rewards.create": {act: "create", col: colRZRewards, ids: "hex", defaults: loyaltyDefaults,
			mutate: func(s *Server, c *call, d map[string]any) *apiError {
				d["available"] = gjson.GetBytes(c.raw, "quantity.total").Value()
				return nil
			}},
		"referrizer.loyalty_rewards.update": {act: "update", col: colRZRewards, idParam: "loyaltyRewardId"},
		"referrizer.loyalty_rewards.redeem": {act: "create", col: colRZRedeems, ids: "hex", mutate: redeem,
			parent: &parentRef{colRZRewards, "loyaltyRewardId", "Loyalty reward"}},
		"referrizer.contacts.notes.add": {act: "create", col: colRZNotes, ids: "hex", created: "createdAt",
			parent: &parentRef{colRZContacts, "contactId", "Contact"}, mutate: pathContact},
		"referrizer.tasks.create": {act: "create", col: colRZTasks, ids: "hex", created: "createdAt", updated: "updatedAt",
			parent: &parentRef{colRZContacts, "contactId", "Contact"},
			defaults: func(s *Server, l *location, now time.Time) map[string]any {
				return map[string]any{"status": "OPEN", "completed": false}
			}},
		"referrizer.visits.create": {act: "create", col: colRZVisits, ids: "hex",
			parent: &parentRef{colRZContacts, "contactId", "Contact"}, mutate: visitFields},
		"referrizer.contacts.invite": {act: "noop", parent: &parentRef{colRZContacts, "contactId", "Contact"},
			result: map[string]any{"success": true, "message": "Invitation sent"}},
	}
	for id, g := range rr {
		gens[id] = g
	}
	for id, h := range map[string]handler{
		"referralrock.members.update":   hRRBulkUpdate(colRRMembers, "member", "memberId", "MemberUpdate"),
		"referralrock.referrals.update": hRRBulkUpdate(colRRReferrals, "referral", "referralId", "ReferralUpdate"),
		"referralrock.referrals.get":    hRRReferral,
		"referralrock.rewards.create":   hRRCreateRewards,
		"referrizer.contacts.upsert":    hRZUpsertContact,
		"referrizer.contacts.tags.add":  hRZAddTags,
	} {
		opHandlers[id] = h
	}
}

func memberDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"disabledFlag": false, "views": 0, "referrals": 0, "rewardIssuedTotal": 0, "status": "Active",
		"activatedDate": stampValue("referralrock", now)}
}

// memberFields derives a member's name and referral code and checks the
// program.
func memberFields(s *Server, c *call, d map[string]any) *apiError {
	first, _ := d["firstName"].(string)
	last, _ := d["lastName"].(string)
	d["fullName"] = strings.TrimSpace(first + " " + last)
	if _, ok := d["referralCode"]; !ok {
		d["referralCode"] = strings.ToLower(first) + s.newID()[:6]
	}
	prog := c.loc.col(colRRPrograms, false)
	pid, _ := d["programId"].(string)
	if prog == nil || prog.get(pid) == nil {
		return errf(http.StatusBadRequest, "Program not found")
	}
	d["programName"] = prog.get(pid).data["name"]
	delete(d, "customText1Name")
	delete(d, "customText1Value")
	return nil
}

func referralDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"status": "pending", "amount": 0, "note": "", "publicNote": "", "companyName": ""}
}

// referralFields links a referral to the member whose referral code it
// carries.
func referralFields(s *Server, c *call, d map[string]any) *apiError {
	code, _ := d["referralCode"].(string)
	var m *object
	if col := c.loc.col(colRRMembers, false); col != nil {
		for _, o := range col.order {
			if o.data["referralCode"] == code {
				m = o
				break
			}
		}
	}
	if m == nil {
		return errf(http.StatusBadRequest, "Invalid referral code")
	}
	first, _ := d["firstName"].(string)
	last, _ := d["lastName"].(string)
	d["fullName"] = strings.TrimSpace(first + " " + last)
	d["displayName"] = d["fullName"]
	d["referringMemberId"] = m.id
	d["referringMemberName"] = m.data["fullName"]
	d["memberEmail"] = m.data["email"]
	d["programId"] = m.data["programId"]
	d["programName"] = m.data["programName"]
	if st, _ := d["status"].(string); st != "" {
		d["status"] = strings.ToLower(st)
	}
	return nil
}

// findReferral checks that a referral action names an existing referral.
func findReferral(s *Server, c *call, d map[string]any) *apiError {
	q, _ := d["referralQuery"].(map[string]any)
	if lookupRR(c.loc.col(colRRReferrals, false), q, "referralId") == nil {
		return errf(http.StatusBadRequest, "Referral not found")
	}
	return nil
}

func issueReward(s *Server, c *call, d map[string]any) *apiError {
	if d["status"] == "Issued" {
		return errf(http.StatusBadRequest, "Reward already issued")
	}
	d["status"] = "Issued"
	d["issueDate"] = stampValue("referralrock", c.now)
	return nil
}

// lookupRR finds a record by a Referral Rock query {primaryInfo{<idKey>},
// secondaryInfo{email, externalIdentifier, phoneNumber}}.
func lookupRR(col *collection, q map[string]any, idKey string) *object {
	if col == nil || q == nil {
		return nil
	}
	if p, _ := q["primaryInfo"].(map[string]any); p != nil {
		if id, _ := p[idKey].(string); id != "" {
			return col.get(id)
		}
		if code, _ := p["referralCode"].(string); code != "" {
			for _, o := range col.order {
				if o.data["referralCode"] == code {
					return o
				}
			}
		}
	}
	if sec, _ := q["secondaryInfo"].(map[string]any); sec != nil {
		var match *object
		n := 0
		for _, o := range col.order {
			ok := false
			for _, k := range []string{"email", "externalIdentifier", "phoneNumber"} {
				if v, _ := sec[k].(string); v != "" && strings.EqualFold(fmtAny(o.data[k]), v) {
					ok = true
				}
			}
			if ok {
				match = o
				n++
			}
		}
		if n == 1 {
			return match
		}
	}
	return nil
}

// hRRBulkUpdate serves Referral Rock's array updates: [{query, <key>}] in,
// [{query, <key>, resultInfo}] out, one result per item.
func hRRBulkUpdate(colName, key, idKey, event string) handler {
	return func(s *Server, c *call) (int, any) {
		var items []map[string]any
		if err := json.Unmarshal(c.raw, &items); err != nil {
			return 0, errf(http.StatusBadRequest, "The request body must be a JSON array")
		}
		l := c.loc
		out := make([]map[string]any, 0, len(items))
		var changed [][]byte
		l.mu.Lock()
		col := l.col(colName, true)
		for _, it := range items {
			q, _ := it["query"].(map[string]any)
			res := map[string]any{"query": q}
			o := lookupRR(col, q, idKey)
			if o == nil {
				res[key] = nil
				res["resultInfo"] = map[string]any{"status": "Failed", "message": "No matching " + key + " found"}
				out = append(out, res)
				continue
			}
			fields, _ := it[key].(map[string]any)
			for k, v := range fields {
				if k == "status" {
					v = strings.ToLower(fmtAny(v))
				}
				o.data[k] = v
			}
			if _, ok := o.data["updateDate"]; ok || key == "referral" {
				o.data["updateDate"] = stampValue("referralrock", c.now)
			}
			o.encode()
			changed = append(changed, o.raw)
			res[key] = json.RawMessage(o.raw)
			res["resultInfo"] = map[string]any{"status": "Success", "message": ""}
			out = append(out, res)
		}
		l.mu.Unlock()
		for _, raw := range changed {
			s.emitRaw(l.id, event, raw)
		}
		return http.StatusOK, out
	}
}

// hRRReferral is GET /api/referral/single by referralId, email or
// externalId.
func hRRReferral(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.RLock()
	defer l.mu.RUnlock()
	col := l.col(colRRReferrals, false)
	if col != nil {
		if id := c.query("referralId"); id != "" {
			if o := col.get(id); o != nil {
				return http.StatusOK, o.raw
			}
		}
		for _, o := range col.order {
			if e := c.query("email"); e != "" && strings.EqualFold(fmtAny(o.data["email"]), e) {
				return http.StatusOK, o.raw
			}
			if x := c.query("externalId"); x != "" && o.data["externalIdentifier"] == x {
				return http.StatusOK, o.raw
			}
		}
	}
	return 0, notFoundErr("Referral")
}

// hRRCreateRewards is POST /api/rewards with an array of {memberQuery,
// referralQuery, newReward}.
func hRRCreateRewards(s *Server, c *call) (int, any) {
	var items []map[string]any
	if err := json.Unmarshal(c.raw, &items); err != nil {
		return 0, errf(http.StatusBadRequest, "The request body must be a JSON array")
	}
	g := &gen{app: "referralrock", ids: "guid", created: "createDate", updated: "updateDate"}
	l := c.loc
	out := make([]map[string]any, 0, len(items))
	var created [][]byte
	l.mu.Lock()
	for _, it := range items {
		mq, _ := it["memberQuery"].(map[string]any)
		rq, _ := it["referralQuery"].(map[string]any)
		res := map[string]any{"memberQuery": mq, "referralQuery": rq}
		m := lookupRR(l.col(colRRMembers, false), mq, "memberId")
		ref := lookupRR(l.col(colRRReferrals, false), rq, "referralId")
		nr, _ := it["newReward"].(map[string]any)
		if (m == nil && ref == nil) || nr == nil {
			res["reward"] = nil
			res["resultInfo"] = map[string]any{"status": "Failed", "message": "No matching member or referral found"}
			out = append(out, res)
			continue
		}
		d := map[string]any{"status": "Pending", "type": "Member", "amount": 0, "description": ""}
		for k, v := range nr {
			d[k] = v
		}
		if ref != nil {
			d["type"], d["referralId"] = "Referral", ref.id
			d["recipientName"], d["recipientEmailAddress"] = ref.data["fullName"], ref.data["email"]
			d["programId"], d["memberId"] = ref.data["programId"], ref.data["referringMemberId"]
		} else {
			d["memberId"], d["programId"] = m.id, m.data["programId"]
			d["recipientName"], d["recipientEmailAddress"] = m.data["fullName"], m.data["email"]
		}
		o := s.insert(l, g, colRRRewards, c.now, d)
		created = append(created, o.raw)
		res["reward"] = json.RawMessage(o.raw)
		res["resultInfo"] = map[string]any{"status": "Success", "message": ""}
		out = append(out, res)
	}
	l.mu.Unlock()
	for _, raw := range created {
		s.emitRaw(l.id, "RewardAdd", raw)
	}
	return http.StatusOK, out
}

func loyaltyDefaults(s *Server, l *location, now time.Time) map[string]any {
	return map[string]any{"type": "ITEM", "expires": false, "startDate": isoTime(now), "value": 0}
}

// redeem records a redemption of a loyalty reward by a contact.
func redeem(s *Server, c *call, d map[string]any) *apiError {
	cc := c.loc.col(colRZContacts, false)
	cid, _ := d["contactId"].(string)
	if cc == nil || cc.get(cid) == nil {
		return notFoundErr("Contact")
	}
	r := c.loc.col(colRZRewards, false).get(c.param("loyaltyRewardId"))
	pts := intArg(r.data["points"], 0)
	ct := cc.get(cid)
	if have := intArg(ct.data["points"], 0); have < pts {
		return errf(http.StatusBadRequest, "INSUFFICIENT_LOYALTY_POINTS")
	}
	ct.data["points"] = intArg(ct.data["points"], 0) - pts
	ct.encode()
	d["loyaltyRewardId"] = r.id
	d["points"] = pts
	d["date"] = isoTime(c.now)
	return nil
}

func pathContact(s *Server, c *call, d map[string]any) *apiError {
	d["contactId"] = c.param("contactId")
	return nil
}

func visitFields(s *Server, c *call, d map[string]any) *apiError {
	if _, ok := d["date"]; !ok {
		d["date"] = isoTime(c.now)
	}
	if t, ok := timeInput(fmtAny(d["date"])); ok && t.After(c.now.Add(time.Minute)) {
		return errf(http.StatusBadRequest, "VISIT_DATE_IN_FUTURE")
	}
	ct := c.loc.col(colRZContacts, false).get(fmtAny(d["contactId"]))
	ct.data["points"] = intArg(ct.data["points"], 0) + intArg(d["points"], 0)
	ct.data["visits"] = intArg(ct.data["visits"], 0) + 1
	ct.encode()
	return nil
}

// hRZUpsertContact creates a Referrizer contact or updates the one with the
// same email or phone.
func hRZUpsertContact(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.Lock()
	col := l.col(colRZContacts, true)
	var o *object
	email, phone := c.bodyStr("email"), c.bodyStr("phone")
	for _, x := range col.order {
		if (email != "" && strings.EqualFold(fmtAny(x.data["email"]), email)) || (phone != "" && x.data["phone"] == phone) {
			o = x
			break
		}
	}
	status := http.StatusOK
	if o == nil {
		o = s.insert(l, &gen{app: "referrizer", ids: "hex", created: "createdAt", updated: "updatedAt"}, colRZContacts,
			c.now, map[string]any{"points": 0, "visits": 0, "tags": []any{}})
		status = http.StatusCreated
	}
	for k, v := range c.body {
		if k == "tags" {
			cur, _ := o.data["tags"].([]any)
			add, _ := v.([]any)
			o.data["tags"], _ = editList(cur, add, true)
			continue
		}
		o.data[k] = v
	}
	o.data["updatedAt"] = isoTime(c.now)
	o.encode()
	raw := o.raw
	l.mu.Unlock()
	return status, raw
}

func hRZAddTags(s *Server, c *call) (int, any) {
	l := c.loc
	l.mu.Lock()
	defer l.mu.Unlock()
	col := l.col(colRZContacts, true)
	o := col.get(c.param("contactId"))
	if o == nil {
		return 0, notFoundErr("Contact")
	}
	add, _ := c.body["tags"].([]any)
	cur, _ := o.data["tags"].([]any)
	o.data["tags"], _ = editList(cur, add, true)
	o.data["updatedAt"] = isoTime(c.now)
	o.encode()
	return http.StatusOK, o.raw
}
