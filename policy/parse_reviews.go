package policy

// Parsing of `reviews`: campaign and report schedules.

import (
	"strings"
	"time"
	_ "time/tzdata" // reviews.timezone must resolve in images without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

func (d *decoder) schedule(f fields, field string) string {
	v, n := d.str(f, field, "schedule")
	if v == "" {
		return ""
	}
	if _, err := cron.ParseStandard(v); err != nil {
		d.errf(n, join(field, "schedule"), "bad cron schedule %q: %v (5 fields \"min hour dom month dow\", or @daily, @every 1h)", v, err)
	}
	return v
}

func (d *decoder) reviews(s *Set, n *yaml.Node) {
	f, ok := d.mapping(n, "reviews", "timezone", "admin_access_report", "contractor_expiry", "compliance_package", "certification")
	if !ok {
		return
	}
	r := &s.Reviews
	if tn := f.get("timezone"); tn != nil {
		if v, ok := d.scalar(tn, "reviews.timezone"); ok {
			loc, err := time.LoadLocation(v)
			if err != nil || v == "" || strings.EqualFold(v, "local") {
				d.errf(tn, "reviews.timezone", "unknown time zone %q: use an IANA name such as UTC or Europe/Berlin", v)
			} else {
				r.Timezone, r.TimezoneName = loc, v
			}
		}
	}
	r.AdminAccessReport = d.reportJob(f, "reviews", "admin_access_report")
	r.CompliancePackage = d.reportJob(f, "reviews", "compliance_package")
	if cn := f.get("contractor_expiry"); cn != nil {
		field := "reviews.contractor_expiry"
		if cf, ok := d.mapping(cn, field, "schedule", "within", "contractors"); ok {
			j := &ContractorJob{Schedule: d.schedule(cf, field)}
			j.Within = d.duration(cf, field, "within", 7*24*time.Hour)
			if wn := cf.get("contractors"); wn == nil {
				d.missing(cf, field, "contractors")
			} else {
				j.Contractors = d.where(wn, field+".contractors")
				if len(j.Contractors) == 0 {
					d.errf(wn, field+".contractors", "empty: this would treat everyone as a contractor; give the attribute, e.g. {userType: Contractor}")
				}
			}
			r.ContractorExpiry = j
		}
	}
	if cn := f.get("certification"); cn != nil {
		field := "reviews.certification"
		cf, ok := d.mapping(cn, field, "schedule", "policies", "reviewer", "channel", "due", "on_timeout")
		if !ok {
			return
		}
		j := &CertificationJob{Schedule: d.schedule(cf, field), Reviewer: Rule{Kind: RuleManager}, OnTimeout: OnTimeoutKeepAndFlag}
		if pn := cf.get("policies"); pn == nil {
			d.missing(cf, field, "policies")
		} else if pf, ok := d.mapping(pn, field+".policies", "privileged", "names"); ok {
			j.Privileged = d.boolean(pf, field+".policies", "privileged")
			if nn := pf.get("names"); nn != nil {
				j.Names = d.strList(nn, field+".policies.names")
				for _, name := range j.Names {
					if _, ok := s.Policy(name); !ok {
						d.errf(nn, field+".policies.names", "unknown policy %q", name)
					}
				}
			}
			if !j.Privileged && len(j.Names) == 0 {
				d.errf(pn, field+".policies", "selects no policy: write {privileged: true} or {names: [...]}")
			}
		}
		if rn := cf.get("reviewer"); rn != nil {
			if rule, ok := d.rule(rn, field+".reviewer"); ok {
				j.Reviewer = rule
			}
		}
		if chn := cf.get("channel"); chn != nil {
			j.Channel = d.optStr(cf, field, "channel", "")
			if j.Channel != "" {
				d.channel(chn, field+".channel", j.Channel)
			}
		}
		j.Due = d.duration(cf, field, "due", DefaultCertificationDue)
		if on := cf.get("on_timeout"); on != nil {
			switch v, _ := d.scalar(on, field+".on_timeout"); v {
			case OnTimeoutRevoke, OnTimeoutEscalate, OnTimeoutKeepAndFlag:
				j.OnTimeout = v
			case "":
			default:
				d.errf(on, field+".on_timeout", "%q: write revoke, escalate or keep-and-flag", v)
			}
		}
		r.Certification = j
	}
}

func (d *decoder) reportJob(parent fields, pfield, key string) *ReportJob {
	n := parent.get(key)
	if n == nil {
		return nil
	}
	field := join(pfield, key)
	f, ok := d.mapping(n, field, "schedule", "channel")
	if !ok {
		return nil
	}
	j := &ReportJob{Schedule: d.schedule(f, field)}
	var cn *yaml.Node
	j.Channel, cn = d.str(f, field, "channel")
	if j.Channel != "" {
		d.channel(cn, field+".channel", j.Channel)
	}
	return j
}
