package sim

// opHandlers are the operations with handlers of their own; the rest are
// served by the generic collection handlers (generic.go).
var opHandlers = map[string]handler{
	"ghl.contacts.get":                 hGetContact,
	"ghl.contacts.create":              hCreateContact,
	"ghl.contacts.update":              hUpdateContact,
	"ghl.contacts.delete":              hDeleteContact,
	"ghl.contacts.upsert":              hUpsertContact,
	"ghl.contacts.search":              hSearchContacts,
	"ghl.contacts.list":                hListContacts,
	"ghl.contacts.duplicate":           hDuplicate,
	"ghl.contacts.by_business":         hContactsByBusiness,
	"ghl.businesses.bulk_contacts":     hBulkBusiness,
	"ghl.contacts.tags.add":            hAddTags,
	"ghl.contacts.tags.remove":         hRemoveTags,
	"ghl.contacts.tags.bulk_update":    hBulkTags,
	"ghl.contacts.followers.add":       hFollowers(true),
	"ghl.contacts.followers.remove":    hFollowers(false),
	"ghl.campaigns.add_contact":        hContactMembership("campaigns", "campaignId", true),
	"ghl.campaigns.remove_contact":     hContactMembership("campaigns", "campaignId", false),
	"ghl.campaigns.remove_contact_all": hContactMembership("campaigns", "", false),
	"ghl.workflows.add_contact":        hContactMembership("workflows", "workflowId", true),
	"ghl.workflows.remove_contact":     hContactMembership("workflows", "workflowId", false),

	"ghl.contacts.tasks.list":     hListChildren(tasksCol, "tasks"),
	"ghl.contacts.tasks.get":      hGetChild(tasksCol, "task", "taskId", "Task"),
	"ghl.contacts.tasks.create":   hCreateTask,
	"ghl.contacts.tasks.update":   hUpdateTask(false),
	"ghl.contacts.tasks.complete": hUpdateTask(true),
	"ghl.contacts.tasks.delete":   hDeleteChild(tasksCol, "taskId", "Task"),
	"ghl.tasks.search":            hSearchTasks,

	"ghl.contacts.notes.list":   hListChildren(notesCol, "notes"),
	"ghl.contacts.notes.get":    hGetChild(notesCol, "note", "id", "Note"),
	"ghl.contacts.notes.create": hCreateNote,
	"ghl.contacts.notes.update": hUpdateNote,
	"ghl.contacts.notes.delete": hDeleteChild(notesCol, "id", "Note"),
}

// handlerFor picks the handler of a route: the first of its operations with
// one of its own, else the generic handler.
func handlerFor(r *route) handler {
	for _, op := range r.ops {
		if h := opHandlers[op.ID]; h != nil {
			return h
		}
	}
	return genericHandler(r)
}
