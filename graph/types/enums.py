"""Domain enums exposed as GraphQL enums (the domain classes stay framework-free;
strawberry only attaches its definition to them)."""

from __future__ import annotations

import strawberry

from domain import baas, breaches, patients, purposes, retention, security_events

ConsentType = strawberry.enum(patients.ConsentType)
ConsentStatus = strawberry.enum(patients.ConsentStatus)
RetentionClass = strawberry.enum(patients.RetentionClass)
BaaStatus = strawberry.enum(baas.BaaStatus)
BreachStatus = strawberry.enum(breaches.BreachStatus)
RiskConclusion = strawberry.enum(breaches.RiskConclusion)
NotificationRecipient = strawberry.enum(breaches.NotificationRecipient)
NotificationMethod = strawberry.enum(breaches.NotificationMethod)
DeadlineStatus = strawberry.enum(breaches.DeadlineStatus)
DeletionReason = strawberry.enum(retention.DeletionReason)
AuditOutcome = strawberry.enum(security_events.Outcome, name="AuditOutcome")
PurposeOfUse = strawberry.enum(purposes.Purpose, name="PurposeOfUse")
