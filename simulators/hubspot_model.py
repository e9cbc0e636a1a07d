"""In-memory CRM of one HubSpot portal: records, property registry, associations.

Kept free of HTTP so tests and the admin endpoints can seed it directly. Methods raise
`HubSpotError`, which the HTTP layer turns into HubSpot's error body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from simulators.common import now_iso

OBJECT_TYPES = ("companies", "deals", "line_items", "products", "invoices", "subscriptions")
COMMON_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
STANDARD_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("name", "domain", "phone", "address", "address2", "city", "zip", "state",
                  "country", "orgno", "vat_number", "kleer_email", "kleer_currency",
                  "kleer_delivery_method", "kleer_payment_days"),
    "deals": ("dealname", "amount", "closedate", "description", "dealstage", "pipeline",
              "deal_currency_code"),
    "line_items": ("name", "quantity", "price", "hs_product_id", "description", "discount",
                   "hs_discount_percentage", "recurringbillingfrequency",
                   "hs_recurring_billing_period", "hs_sku"),
    "products": ("name", "price", "hs_sku", "kleer_product_id"),
    "invoices": ("hs_currency", "hs_invoice_date", "hs_due_date", "hs_title", "hs_number",
                 "hs_invoice_status", "hs_amount_billed"),
    "subscriptions": ("hs_name", "hs_status", "hs_recurring_billing_start_date",
                      "hs_recurring_billing_end_date", "hs_currency_code",
                      "hs_billing_frequency"),
}
# (name, hasUniqueValue) of the properties our app creates; seeded unless told otherwise.
KLEER_PROPERTIES: dict[str, tuple[tuple[str, bool], ...]] = {
    "companies": (("kleer_id", False),),
    "deals": (("kleer_invoice_id", False), ("kleer_agreement_id", False),
              ("kleer_project_id", False)),
    "invoices": (("kleer_id", True),),
    "subscriptions": (("kleer_id", True),),
}
GROUPS = {"companies": "companyinformation", "deals": "dealinformation",
          "line_items": "lineiteminformation", "products": "productinformation",
          "invoices": "invoiceinformation", "subscriptions": "subscriptioninformation"}
# Properties a GET without `properties=` returns (besides the common ones), like HubSpot's defaults.
DEFAULT_READ = {"companies": ("name", "domain"),
                "deals": ("dealname", "amount", "closedate", "dealstage", "pipeline"),
                "line_items": ("name", "quantity", "price", "hs_product_id"),
                "products": ("name", "price"),
                "invoices": ("hs_currency", "hs_invoice_date", "hs_number"),
                "subscriptions": ("hs_name", "hs_status")}

# typeId -> (from type, to type, v3 name, v4 label). HubSpot's real ids where documented;
# the subscription ids (300-305) are this simulator's own choice.
ASSOCIATION_TYPES: dict[int, tuple[str, str, str, str | None]] = {
    5: ("deals", "companies", "deal_to_company", "Primary"),
    341: ("deals", "companies", "deal_to_company_unlabeled", None),
    6: ("companies", "deals", "company_to_deal", "Primary"),
    342: ("companies", "deals", "company_to_deal_unlabeled", None),
    19: ("deals", "line_items", "deal_to_line_item", None),
    20: ("line_items", "deals", "line_item_to_deal", None),
    175: ("invoices", "deals", "invoice_to_deal", None),
    176: ("deals", "invoices", "deal_to_invoice", None),
    179: ("invoices", "companies", "invoice_to_company", None),
    180: ("companies", "invoices", "company_to_invoice", None),
    409: ("invoices", "line_items", "invoice_to_line_item", None),
    410: ("line_items", "invoices", "line_item_to_invoice", None),
    300: ("subscriptions", "deals", "subscription_to_deal", None),
    301: ("deals", "subscriptions", "deal_to_subscription", None),
    302: ("subscriptions", "companies", "subscription_to_company", None),
    303: ("companies", "subscriptions", "company_to_subscription", None),
    304: ("subscriptions", "line_items", "subscription_to_line_item", None),
    305: ("line_items", "subscriptions", "line_item_to_subscription", None),
}
INVERSE = {5: 6, 341: 342, 19: 20, 175: 176, 179: 180, 409: 410, 300: 301, 302: 303, 304: 305}
INVERSE.update({b: a for a, b in list(INVERSE.items())})
# A primary association is always accompanied by the unlabeled one (as in HubSpot).
IMPLIED = {5: 341, 6: 342}
# `/associations/default/` creates the unlabeled type of the pair.
DEFAULT_TYPE = {(f, t): tid for tid, (f, t, _, label) in ASSOCIATION_TYPES.items() if not label}


# hubspot.md section 7: inline associations of a v3 read are keyed by display names, not object
# type names (`deal['associations']['line items']['results']` in public integrations).
INLINE_ASSOCIATION_KEYS = {"line_items": "line items"}

# hubspot.md section 7, "Line item billing enumerations": the only accepted frequencies, and the
# term as an ISO-8601 period (a bare "24" is INVALID_RECURRING_BILLING_DURATION).
BILLING_FREQUENCIES = ("weekly", "biweekly", "monthly", "quarterly", "per_six_months", "annually",
                       "per_two_years", "per_three_years", "per_four_years", "per_five_years")
_ISO_PERIOD = re.compile(r"P(?=\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?")
# hubspot.md section 7, "Prices are decimal strings".
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def _line_item_problems(props: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    frequency = props.get("recurringbillingfrequency")
    if frequency not in (None, "") and frequency not in BILLING_FREQUENCIES:
        problems.append({"isValid": False, "name": "recurringbillingfrequency",
                         "error": "INVALID_OPTION",
                         "message": f"{frequency} was not one of the allowed options: "
                                    f"{list(BILLING_FREQUENCIES)}"})
    term = props.get("hs_recurring_billing_period")
    if term not in (None, "") and not (isinstance(term, str) and _ISO_PERIOD.fullmatch(term)):
        problems.append({"isValid": False, "name": "hs_recurring_billing_period",
                         "error": "INVALID_RECURRING_BILLING_DURATION",
                         "message": f"{term!r} is not an ISO-8601 period such as P12M"})
    for name in ("price", "quantity", "discount", "hs_discount_percentage"):
        value = props.get(name)
        if value not in (None, "") and not (isinstance(value, str | int | float)
                                            and _DECIMAL.fullmatch(str(value))):
            problems.append({"isValid": False, "name": name, "error": "INVALID_DECIMAL",
                             "message": f"{value!r} is not a valid decimal number"})
    return problems


# HubSpot's invoices guide: an invoice is created as a draft, moved to open, then paid or voided.
INVOICE_STATUSES = ("draft", "open", "paid", "voided")


def _invoice_problems(props: dict[str, Any]) -> list[dict[str, Any]]:
    status = props.get("hs_invoice_status")
    if status in (None, "") or status in INVOICE_STATUSES:
        return []
    return [{"isValid": False, "name": "hs_invoice_status", "error": "INVALID_OPTION",
             "message": f"{status} was not one of the allowed options: {list(INVOICE_STATUSES)}"}]


ALIASES = {"company": "companies", "deal": "deals", "line_item": "line_items",
           "product": "products", "invoice": "invoices", "subscription": "subscriptions"}


def object_type_name(name: str) -> str:
    """HubSpot accepts singular names (and objectTypeIds we do not model) as well as plurals."""
    return ALIASES.get(name.lower(), name.lower())


class HubSpotError(Exception):
    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def not_found(object_type: str, object_id: str) -> HubSpotError:
    return HubSpotError(404, "OBJECT_NOT_FOUND",
                        f"resource not found: {object_type} {object_id} does not exist")


def invalid(message: str) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message)


def _as_hubspot_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Crm:
    """One portal's objects, properties, groups and associations (caller holds the lock)."""

    def __init__(self, next_id: Callable[[], str], seed_kleer_properties: bool = True) -> None:
        self.next_id = next_id
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self.assoc: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = {}
        # (object type, unique property) -> value -> record ids (find_by's index)
        self._unique: dict[tuple[str, str], dict[Any, set[str]]] = {}
        for object_type in OBJECT_TYPES:
            group = GROUPS[object_type]
            self.groups[object_type][group] = {"name": group, "label": group, "displayOrder": -1,
                                               "archived": False}
            names = COMMON_PROPERTIES + STANDARD_PROPERTIES[object_type]
            for name in names:
                self.add_property(object_type, {"name": name, "label": name, "type": "string",
                                                "fieldType": "text", "groupName": group})
            for name, unique in KLEER_PROPERTIES.get(object_type, ()) if seed_kleer_properties \
                    else ():
                self.add_property(object_type, {
                    "name": name, "label": name, "type": "string", "fieldType": "text",
                    "groupName": group, "hasUniqueValue": unique})

    @staticmethod
    def check_type(object_type: str) -> None:
        if object_type not in OBJECT_TYPES:
            raise invalid(f"Unable to infer object type from: {object_type}")

    # -- property registry --

    def add_property(self, object_type: str, definition: dict[str, Any]) -> dict[str, Any]:
        self.check_type(object_type)
        name = definition.get("name")
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not isinstance(definition.get(key), str) or not definition[key]:
                raise invalid(f"Property definition is missing \"{key}\"")
        if name in self.properties[object_type]:
            raise HubSpotError(409, "CONFLICT", f"A property named '{name}' already exists.")
        if definition["groupName"] not in self.groups[object_type]:
            raise invalid(f"Property group {definition['groupName']} does not exist")
        now = now_iso()
        stored = {"description": "", "options": [], "hidden": False, "formField": False,
                  **definition, "hasUniqueValue": bool(definition.get("hasUniqueValue", False)),
                  "createdAt": now, "updatedAt": now, "archived": False}
        self.properties[object_type][name] = stored
        return stored

    def add_group(self, object_type: str, definition: dict[str, Any]) -> dict[str, Any]:
        self.check_type(object_type)
        name, label = definition.get("name"), definition.get("label")
        if not isinstance(name, str) or not name or not isinstance(label, str) or not label:
            raise invalid("Property group needs \"name\" and \"label\"")
        if name in self.groups[object_type]:
            raise HubSpotError(409, "CONFLICT", f"A property group named '{name}' already exists.")
        group = {"name": name, "label": label,
                 "displayOrder": definition.get("displayOrder", -1), "archived": False}
        self.groups[object_type][name] = group
        return group

    def clean_properties(self, object_type: str, props: Any) -> dict[str, str | None]:
        """Reject unknown properties with HubSpot's PROPERTY_DOESNT_EXIST message."""
        if props is None:
            return {}
        if not isinstance(props, dict):
            raise invalid("properties must be an object")
        details = [{"isValid": False, "message": f"Property \"{n}\" does not exist",
                    "error": "PROPERTY_DOESNT_EXIST", "name": n}
                   for n in props if n not in self.properties[object_type]]
        details += [{"isValid": False, "message": f"\"{n}\" is a read only property; its value "
                     "cannot be set.", "error": "READ_ONLY_VALUE", "name": n}
                    for n in props if n in COMMON_PROPERTIES]
        if object_type == "line_items":
            details += _line_item_problems(props)
        if object_type == "invoices":
            details += _invoice_problems(props)
        if details:
            compact = json.dumps(details, separators=(",", ":"))
            raise invalid(f"Property values were not valid: {compact}")
        return {n: _as_hubspot_value(v) for n, v in props.items()}

    def _check_unique(self, object_type: str, props: dict[str, Any], own_id: str | None) -> None:
        for name, value in props.items():
            if value in (None, "") or not self.properties[object_type][name]["hasUniqueValue"]:
                continue
            other = self.find_by(object_type, name, value)
            if other is not None and other["id"] != own_id:
                raise HubSpotError(409, "CONFLICT",
                                   f"A {object_type} record with {name}={value} already exists "
                                   f"(id {other['id']})")

    # -- records --

    def get(self, object_type: str, object_id: str) -> dict[str, Any]:
        self.check_type(object_type)
        record = self.objects[object_type].get(str(object_id))
        if record is None or record["archived"]:
            raise not_found(object_type, str(object_id))
        return record

    def find_by(self, object_type: str, prop: str, value: str) -> dict[str, Any] | None:
        definition = self.properties[object_type].get(prop)
        if definition is not None and definition["hasUniqueValue"]:
            # Unique properties are indexed (an upsert of 10,000 records stays linear).
            for object_id in list(self._unique.get((object_type, prop), {}).get(value, ())):
                record = self.objects[object_type].get(object_id)
                if record and not record["archived"] and record["properties"].get(prop) == value:
                    return record
            return None
        for record in self.objects[object_type].values():
            if not record["archived"] and record["properties"].get(prop) == value:
                return record
        return None

    def _index(self, object_type: str, record: dict[str, Any]) -> None:
        for name, value in record["properties"].items():
            definition = self.properties[object_type].get(name)
            if value not in (None, "") and definition is not None and definition["hasUniqueValue"]:
                self._unique.setdefault((object_type, name), {}).setdefault(value, set()).add(
                    record["id"])

    def resolve(self, object_type: str, object_id: str, id_property: str | None) -> dict:
        """A record by id, or by a unique property value (`idProperty`)."""
        if not id_property or id_property == "hs_object_id":
            return self.get(object_type, object_id)
        record = self.find_by(object_type, id_property, str(object_id))
        if record is None:
            raise not_found(object_type, f"{id_property}={object_id}")
        return record

    def check_associations(self, object_type: str,
                           associations: list[tuple[str, str, int]]) -> None:
        for to_type, to_id, type_id in associations:
            spec = ASSOCIATION_TYPES.get(type_id)
            if spec is None or spec[:2] != (object_type, to_type):
                raise invalid(f"association type id {type_id} is not valid between "
                              f"{object_type} and {to_type}")
            self.get(to_type, to_id)

    def create(self, object_type: str, props: dict[str, Any],
               associations: list[tuple[str, str, int]] | None = None) -> dict[str, Any]:
        self.check_type(object_type)
        clean = self.clean_properties(object_type, props)
        self._check_unique(object_type, clean, None)
        self.check_associations(object_type, associations or [])
        object_id, now = self.next_id(), now_iso()
        record = {"id": object_id,
                  "properties": {**clean, "hs_object_id": object_id, "createdate": now,
                                 "hs_lastmodifieddate": now},
                  "createdAt": now, "updatedAt": now, "archived": False}
        self.objects[object_type][object_id] = record
        for to_type, to_id, type_id in associations or []:
            self.associate(object_type, object_id, to_type, str(to_id), type_id)
        self._index(object_type, record)
        return record

    def update(self, object_type: str, object_id: str, props: dict[str, Any],
               id_property: str | None = None) -> dict[str, Any]:
        record = self.resolve(object_type, object_id, id_property)
        clean = self.clean_properties(object_type, props)
        self._check_unique(object_type, clean, record["id"])
        now = now_iso()
        record["properties"].update(clean)
        record["properties"]["hs_lastmodifieddate"] = now
        record["updatedAt"] = now
        self._index(object_type, record)
        return record

    def archive(self, object_type: str, object_id: str) -> None:
        record = self.get(object_type, object_id)
        record["archived"] = True
        key = (object_type, record["id"])
        for other in self.assoc.pop(key, {}):
            self.assoc.get(other, {}).pop(key, None)

    # -- associations --

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  type_id: int | None = None) -> list[int]:
        """Store both directions; returns the type ids stored on the from side."""
        self.get(from_type, from_id)
        self.get(to_type, to_id)
        if type_id is None:
            type_id = DEFAULT_TYPE.get((from_type, to_type))
            if type_id is None:
                raise invalid(f"no default association between {from_type} and {to_type}")
        type_ids = [type_id] + ([IMPLIED[type_id]] if type_id in IMPLIED else [])
        forward = self.assoc.setdefault((from_type, from_id), {}).setdefault(
            (to_type, to_id), set())
        backward = self.assoc.setdefault((to_type, to_id), {}).setdefault(
            (from_type, from_id), set())
        for tid in type_ids:
            forward.add(tid)
            backward.add(INVERSE[tid])
        return type_ids

    def associated(self, object_type: str, object_id: str, to_type: str) -> dict[str, set[int]]:
        links = self.assoc.get((object_type, str(object_id)), {})
        return {tid: set(types) for (ttype, tid), types in links.items() if ttype == to_type}

    # -- rendering --

    def render(self, object_type: str, record: dict[str, Any], properties: list[str] | None = None,
               associations: list[str] | None = None) -> dict[str, Any]:
        """Record as the v3 API returns it; `properties` None means all stored properties."""
        stored = record["properties"]
        if properties is None:
            props = dict(stored)
        else:
            wanted = [p for p in dict.fromkeys([*properties, *COMMON_PROPERTIES])
                      if p in self.properties[object_type]]
            props = {p: stored.get(p) for p in wanted}
        out = {"id": record["id"], "properties": props, "createdAt": record["createdAt"],
               "updatedAt": record["updatedAt"], "archived": record["archived"]}
        rendered: dict[str, Any] = {}
        for to_type in associations or []:
            results = [{"id": to_id, "type": ASSOCIATION_TYPES[tid][2]}
                       for to_id, tids in sorted(self.associated(object_type, record["id"],
                                                                 to_type).items(),
                                                 key=lambda item: int(item[0]))
                       for tid in sorted(tids)]
            if results:
                rendered[INLINE_ASSOCIATION_KEYS.get(to_type, to_type)] = {"results": results}
        if rendered:
            out["associations"] = rendered
        return out
