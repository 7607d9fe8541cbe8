#!/usr/bin/env python3
"""Generates the large retail example: about 10,000 customers of Halden, a
fashion retailer with stores in China, Europe and the United States and an
online shop (web and app), as the exports Tessera imports:

  web_events.ndjson     web and app events (NDJSON connector)
  stores_cn.csv         store purchases, China (GB18030, Chinese headers)
  stores_eu.csv         store purchases, Europe (';' and decimal commas)
  stores_us.csv         store purchases, United States (UTF-8 with BOM)
  loyalty_members.csv   the loyalty programme's members
  mappings/*.json       the CSV connector's mapping and parameters per file
  truth.json            what an import of these files must report

The files carry planted dirt (duplicates, bad dates, missing identities,
non-numeric amounts, invalid GB18030 bytes, mixed spellings of the same
email and phone), and truth.json is computed from the records as written:
which rows a connector accepts and rejects and why, which rows repeat a
source id, how many events are stored, and how many people Tessera's
identity resolution ends with. See README.md beside this file.

    generate.py [--seed N] [--customers N] [--out DIR]
    generate.py --check DIR

--check re-reads the files of DIR with Python's csv and json modules,
classifies every row on its own, and compares the result with DIR's
truth.json. Standard library only; deterministic from the seed.
"""

import argparse
import collections
import csv
import datetime as dt
import io
import json
import os
import random
import re
import sys

DEFAULT_SEED = 20261205
DEFAULT_CUSTOMERS = 10_000
HERE = os.path.dirname(os.path.abspath(__file__))

# The period the data covers. Every time lies in it: nothing is in the
# future (Tessera refuses events more than a day ahead) and nothing is
# older than the default retention of two years before 2027-12-31.
PERIOD_START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
PERIOD_DAYS = 333  # to 2026-11-30
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# ---------------------------------------------------------------------------
# Tessera's identity rules, as this generator assumes them.
#
# host/vault/src/ingest.rs (the "Resolution rules" at the top) and
# host/vault/src/normalize.rs are the reference. In short:
#  - identities are normalised before they are compared: emails trimmed and
#    lowercased; phones to E.164, a number written without a country code
#    taking the tenant's default (+86 here: the tenant is set up with
#    default_country_code = 86), one national trunk 0 dropped, separators
#    (space - . ( ) /) ignored, a leading 00 read as '+'; member ids
#    trimmed, case kept; device ids trimmed, UUIDs lowercased;
#  - email, phone and member_id merge: two subjects holding the same one
#    are one person (the oldest survives);
#  - device_id never merges: a record with only a device id goes to the
#    oldest subject already holding that device (a new subject if none
#    does); a new email next to a known device is a new person on a
#    shared device, and the device stays with its first holder.
# ---------------------------------------------------------------------------

DEFAULT_COUNTRY_CODE = 86
MERGING = ("email", "phone", "member_id")

UUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def normalise_email(raw):
    value = raw.strip()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in value):
        raise ValueError(f"not an email address: {raw!r}")
    local, domain = local.lower(), domain.lower().rstrip(".")
    if domain in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def normalise_phone(raw, default_cc=DEFAULT_COUNTRY_CODE):
    value = raw.strip()
    if any(c in value for c in "xX#,;"):
        raise ValueError(f"phone with an extension: {raw!r}")
    plus = False
    digits = []
    for c in value:
        if "0" <= c <= "9":
            digits.append(c)
        elif c == "+":
            if plus or digits:
                raise ValueError(f"misplaced '+': {raw!r}")
            plus = True
        elif c in "-.()/" or (c.isspace() and c.isprintable()):
            continue
        else:
            raise ValueError(f"not a phone character {c!r}: {raw!r}")
    number = "".join(digits)
    if plus or number.startswith("00"):
        if "(0)" in value:
            number = "".join(c for c in value.replace("(0)", "") if "0" <= c <= "9")
        if not plus:
            number = number[2:]
        if not number or number[0] == "0":
            raise ValueError(f"bad country code: {raw!r}")
        full = number
    else:
        cc = default_cc
        if cc == 1:
            if number.startswith("0"):
                raise ValueError(f"NANP number with 0: {raw!r}")
            if len(number) == 11 and number.startswith("1"):
                number = number[1:]
        elif cc not in (39, 378) and number.startswith("0"):
            number = number[1:]
        full = f"{cc}{number}"
    if not 8 <= len(full) <= 15:
        raise ValueError(f"phone of {len(full)} digits: {raw!r}")
    return "+" + full


def normalise(kind, raw):
    if kind == "email":
        return normalise_email(raw)
    if kind == "phone":
        return normalise_phone(raw)
    value = raw.strip()
    if not value:
        raise ValueError(f"empty {kind}")
    if kind == "member_id" and any(c.isspace() for c in value):
        raise ValueError(f"member id with a space: {raw!r}")
    if kind == "device_id" and UUID_RE.match(value):
        value = value.lower()
    return value


class Resolver:
    """Tessera's resolution (ingest.rs), replayed over accepted records in
    import order: counts subjects created and merged, and what each subject
    ends up holding (tags: online, offline, web_event, store_event,
    loyalty)."""

    def __init__(self):
        self.parent = []  # subject -> the subject it was merged into (itself if live)
        self.linked = {}  # (kind, canonical value) -> subject
        self.tags = []
        self.created = 0
        self.merged = 0
        self.matched = 0  # records that found an existing subject
        self.anonymous_new = 0  # device-only records that had to create a subject

    def find(self, s):
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def new(self):
        s = len(self.parent)
        self.parent.append(s)
        self.tags.append(set())
        self.created += 1
        return s

    def resolve(self, identities, tags):
        """identities: [(kind, canonical value)] of one accepted record."""
        merging = [i for i in identities if i[0] in MERGING]
        found = {self.find(self.linked[i]) for i in merging if i in self.linked}
        if found:
            # Subjects are numbered in creation order: the smallest is the oldest.
            target = min(found)
            for other in found - {target}:
                self.parent[other] = target
                self.tags[target] |= self.tags[other]
                self.merged += 1
            self.matched += 1
        elif not merging:
            devices = {self.find(self.linked[i]) for i in identities if i in self.linked}
            if devices:
                target = min(devices)
                self.matched += 1
            else:
                target = self.new()
                self.anonymous_new += 1
        else:
            target = self.new()
        for i in identities:
            self.linked.setdefault(i, target)
        self.tags[target] |= tags
        return target

    def people(self):
        live = [s for s in range(len(self.parent)) if self.parent[s] == s]
        tags = [self.tags[s] for s in live]
        count = lambda *need, without=(): sum(
            1 for t in tags if all(n in t for n in need) and not any(w in t for w in without))
        return {
            "distinct": len(live),
            "online_only": count("online", without=("offline",)),
            "offline_only": count("offline", without=("online",)),
            "both": count("online", "offline"),
            "by_stored_events": {
                "web_only": count("web_event", without=("store_event",)),
                "store_only": count("store_event", without=("web_event",)),
                "web_and_store": count("web_event", "store_event"),
                "none": count(without=("web_event", "store_event")),
            },
            "loyalty_members": count("loyalty"),
        }


# ---------------------------------------------------------------------------
# The files: their formats, as the mappings describe them.
# ---------------------------------------------------------------------------

CN_HEADER = ["小票号", "门店编号", "门店名称", "会员号", "手机号", "交易时间", "金额", "币种", "件数", "品类", "支付方式"]
EU_HEADER = ["receipt_no", "store_code", "store", "country", "member_card", "phone", "date", "total", "currency", "items", "category"]
US_HEADER = ["Receipt #", "Store", "Store Address", "Loyalty #", "Phone", "Purchased At", "Total", "Currency", "Items", "Category", "Notes"]
LOYALTY_HEADER = ["member_id", "phone", "email", "name", "tier", "birthday", "city", "member_since"]

CN_TIME = "%Y年%m月%d日 %H:%M"
EU_TIME = "%d/%m/%Y %H:%M"
US_TIME = "%m/%d/%Y %H:%M %z"

FILES = {
    "stores_cn.csv": {
        "header": CN_HEADER,
        "params": {"encoding": "gb18030", "delimiter": ",", "decimal": ".", "has_header": True},
        "newline": "\r\n",
        "bom": b"",
        "identities": ["会员号", "手机号"],
        "required_identity": None,
        "time": ("交易时间", CN_TIME),
        "numbers": ["金额"],
        "integers": ["件数"],
        "source_id": "小票号",
        "event": True,
        "mapping": {
            "source": "halden-pos-cn",
            "timezone": "+08:00",
            "identities": {"会员号": "member_id", "手机号": "phone"},
            "event": {
                "type": "purchase",
                "time": {"column": "交易时间", "format": CN_TIME},
                "properties": {
                    "门店编号": {"name": "store_id", "type": "string"},
                    "门店名称": {"name": "store_name", "type": "string"},
                    "金额": {"name": "amount", "type": "number", "required": True},
                    "币种": {"name": "currency", "type": "string"},
                    "件数": {"name": "items", "type": "integer"},
                    "品类": {"name": "category", "type": "string"},
                    "支付方式": {"name": "payment", "type": "string"},
                },
            },
            "source_id": {"column": "小票号"},
        },
    },
    "stores_eu.csv": {
        "header": EU_HEADER,
        "params": {"encoding": "utf-8", "delimiter": ";", "decimal": ",", "has_header": True},
        "newline": "\n",
        "bom": b"",
        "identities": ["member_card", "phone"],
        "required_identity": None,
        "time": ("date", EU_TIME),
        "numbers": ["total"],
        "integers": ["items"],
        "source_id": "receipt_no",
        "event": True,
        "mapping": {
            "source": "halden-pos-eu",
            "timezone": "UTC",
            "identities": {"member_card": "member_id", "phone": "phone"},
            "event": {
                "type": "purchase",
                "time": {"column": "date", "format": EU_TIME},
                "properties": {
                    "store_code": {"name": "store_id", "type": "string"},
                    "store": {"name": "store_name", "type": "string"},
                    "country": "string",
                    "total": {"name": "amount", "type": "number", "required": True},
                    "currency": "string",
                    "items": "integer",
                    "category": "string",
                },
            },
            "source_id": {"column": "receipt_no"},
        },
    },
    "stores_us.csv": {
        "header": US_HEADER,
        "params": {"encoding": "utf-8", "delimiter": ",", "decimal": ".", "has_header": True},
        "newline": "\r\n",
        "bom": b"\xef\xbb\xbf",
        "identities": ["Loyalty #", "Phone"],
        "required_identity": None,
        "time": ("Purchased At", US_TIME),
        "numbers": ["Total"],
        "integers": ["Items"],
        "source_id": "Receipt #",
        "event": True,
        "mapping": {
            "source": "halden-pos-us",
            "identities": {"Loyalty #": "member_id", "Phone": "phone"},
            "event": {
                "type": "purchase",
                "time": {"column": "Purchased At", "format": US_TIME},
                "properties": {
                    "Store": {"name": "store_name", "type": "string"},
                    "Store Address": {"name": "store_address", "type": "string"},
                    "Total": {"name": "amount", "type": "number", "required": True},
                    "Currency": {"name": "currency", "type": "string"},
                    "Items": {"name": "items", "type": "integer"},
                    "Category": {"name": "category", "type": "string"},
                    "Notes": {"name": "note", "type": "string"},
                },
            },
            "source_id": {"column": "Receipt #"},
        },
    },
    "loyalty_members.csv": {
        "header": LOYALTY_HEADER,
        "params": {"encoding": "utf-8", "delimiter": ",", "decimal": ".", "has_header": True},
        "newline": "\n",
        "bom": b"",
        "identities": ["member_id", "phone", "email"],
        "required_identity": "member_id",
        "time": None,
        "numbers": [],
        "integers": [],
        "source_id": "member_id",
        "event": False,
        "mapping": {
            "source": "halden-loyalty",
            "identities": {
                "member_id": {"kind": "member_id", "required": True},
                "phone": "phone",
                "email": "email",
            },
            # birthday and member_since are kept as the YYYY-MM-DD text the
            # export writes: the tenant schema's date traits are such text.
            "traits": {
                "name": "string",
                "tier": "string",
                "birthday": "string",
                "city": "string",
                "member_since": "string",
            },
            "source_id": {"column": "member_id"},
        },
    },
}

# Column -> identity kind, per CSV file (from the mappings).
IDENTITY_KINDS = {
    name: {
        col: (spec if isinstance(spec, str) else spec["kind"])
        for col, spec in f["mapping"]["identities"].items()
    }
    for name, f in FILES.items()
}

NDJSON = "web_events.ndjson"
NDJSON_PARAMS = {"id_prefix": "halden-web:"}
IMPORT_ORDER = ["loyalty_members.csv", "stores_cn.csv", "stores_eu.csv", "stores_us.csv", NDJSON]

# ---------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------

CN_SURNAMES = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
               ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
               ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
               ("罗", "luo"), ("高", "gao"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song")]
CN_GIVEN = [("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
            ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
            ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"),
            ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("欣怡", "xinyi"),
            ("子涵", "zihan"), ("浩然", "haoran"), ("思远", "siyuan"), ("雨桐", "yutong"), ("梓萱", "zixuan")]
CN_CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都"]

EU_NAMES = {
    "FR": (["Marie", "Camille", "Léa", "Chloé", "Julien", "Nicolas", "Thomas", "Hugo", "Élodie", "Mathieu"],
           ["Martin", "Bernard", "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Girard", "Roux", "Fournier"],
           "Paris", "fr"),
    "DE": (["Anna", "Lena", "Laura", "Jonas", "Lukas", "Felix", "Sophie", "Maximilian", "Jürgen", "Katrin"],
           ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schäfer"],
           "München", "de"),
    "IT": (["Giulia", "Francesca", "Chiara", "Marco", "Luca", "Alessandro", "Matteo", "Sara", "Davide", "Elena"],
           ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco"],
           "Milano", "it"),
    "ES": (["Lucía", "María", "Paula", "Javier", "Daniel", "Alejandro", "Carmen", "Pablo", "Sergio", "Marta"],
           ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz"],
           "Madrid", "es"),
    "NL": (["Emma", "Sanne", "Lotte", "Daan", "Sem", "Bram", "Fleur", "Ruben", "Anouk", "Thijs"],
           ["de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer"],
           "Amsterdam", "nl"),
}
US_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
            "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Chris", "Karen",
            "Daniel", "Emily", "Matthew", "Ashley", "Anthony", "Olivia", "Kevin", "Sophia", "Brian", "Grace"]
US_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
           "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
           "O'Brien", "Nguyen", "Kim", "Patel", "Chen", "Walker", "Hall", "Young", "King", "Wright"]
US_CITIES = [("New York", "212"), ("New York", "646"), ("Chicago", "312"), ("San Francisco", "415"),
             ("Boston", "617"), ("Seattle", "206"), ("Los Angeles", "213"), ("Los Angeles", "310"),
             ("Miami", "305"), ("Austin", "512"), ("Denver", "303"), ("Atlanta", "404"),
             ("Washington", "202"), ("Philadelphia", "215"), ("Portland", "503"), ("Houston", "713"),
             ("Dallas", "214"), ("San Diego", "619"), ("Minneapolis", "612"), ("Phoenix", "602")]

# Reserved example domains only (RFC 2606): no address here reaches a mailbox.
EMAIL_DOMAINS = {
    "cn": ["example.cn", "mail.example", "example.com", "qq.example", "example.net"],
    "eu": ["example.eu", "example.com", "post.example", "example.org", "example.net"],
    "us": ["example.com", "example.org", "example.net", "mail.example"],
}

CN_STORES = [("SH01", "上海南京西路店"), ("SH02", "上海徐家汇店"), ("BJ01", "北京三里屯店"), ("BJ02", "北京国贸店"),
             ("GZ01", "广州天河店"), ("SZ01", "深圳万象城店"), ("HZ01", "杭州湖滨店"), ("CD01", "成都太古里店")]
CN_CATEGORIES = ["鞋履", "外套", "包袋", "配饰", "运动服", "针织衫"]
CN_PAYMENTS = ["微信支付", "支付宝", "银联卡", "现金"]
EU_STORES = {
    "FR": [("PAR1", "Halden Paris Rivoli"), ("PAR2", "Halden Paris Haussmann"), ("LYS1", "Halden Lyon Part-Dieu")],
    "DE": [("MUC1", "Halden München Marienplatz"), ("BER1", "Halden Berlin Kurfürstendamm")],
    "IT": [("MIL1", "Halden Milano Duomo"), ("ROM1", "Halden Roma Via del Corso")],
    "ES": [("MAD1", "Halden Madrid Gran Vía"), ("BCN1", "Halden Barcelona Passeig de Gràcia")],
    "NL": [("AMS1", "Halden Amsterdam Kalverstraat")],
}
EU_CATEGORIES = ["shoes", "outerwear", "bags", "accessories", "sportswear", "knitwear"]
US_STORES = [("Halden Fifth Avenue", "725 Fifth Ave, New York, NY 10022"),
             ("Halden SoHo", "120 Prince St, New York, NY 10012"),
             ("Halden Michigan Avenue", "600 N Michigan Ave, Chicago, IL 60611"),
             ("Halden Union Square", "170 O'Farrell St, San Francisco, CA 94102"),
             ("Halden Newbury Street", "240 Newbury St, Boston, MA 02116")]
US_CATEGORIES = ["Shoes", "Outerwear", "Bags", "Accessories", "Sportswear", "Knitwear"]
US_NOTES = ["Gift receipt requested", "Price match, manager approved", "Exchanged size M for L, no refund",
            "Online return, original order attached", "Alterations: hem 2\", pick up Friday",
            "Paid part cash, part card"]
WEB_PATHS = ["/", "/new-in", "/women/shoes", "/men/shoes", "/women/outerwear", "/men/outerwear", "/bags",
             "/accessories", "/sportswear", "/knitwear", "/sale", "/stores"]
APP_SCREENS = ["home", "new_in", "category", "product", "search", "wishlist", "stores"]
CURRENCY = {"cn": "CNY", "eu": "EUR", "us": "USD"}
PRICE = {"cn": (199, 2999), "eu": (29, 399), "us": (35, 450)}


class Human:
    __slots__ = ("hid", "region", "country", "channel", "link", "name", "email", "phone", "member",
                 "loyalty_email", "devices", "shared_with", "city", "language", "spend")


def pick(rng, weighted):
    r = rng.random()
    for value, weight in weighted:
        r -= weight
        if r < 0:
            return value
    return weighted[-1][0]


def make_people(rng, n):
    used_emails, used_phones = set(), set()
    people = []
    for hid in range(1, n + 1):
        h = Human()
        h.hid = hid
        h.region = pick(rng, [("cn", 0.6), ("eu", 0.25), ("us", 0.15)])
        h.spend = rng.random()
        h.channel = pick(rng, [("online", 0.36), ("offline", 0.30), ("both", 0.34)])
        h.link = None
        if h.channel == "both":
            h.link = pick(rng, [("alias", 0.40), ("loyalty_email", 0.28), ("phone", 0.24), ("none", 0.08)])
        # Name, city, language.
        if h.region == "cn":
            (s, sp), (g, gp) = rng.choice(CN_SURNAMES), rng.choice(CN_GIVEN)
            h.country, h.name, h.city, h.language = "CN", s + g, rng.choice(CN_CITIES), "zh"
            local_parts = [f"{sp}{gp}{rng.randint(1, 99)}", f"{gp}.{sp}{rng.randint(60, 99)}",
                           f"{sp}_{gp}{rng.randint(100, 999)}", str(rng.randint(10_000_000, 2_999_999_999))]
        elif h.region == "eu":
            h.country = pick(rng, [("FR", 0.3), ("DE", 0.3), ("IT", 0.15), ("ES", 0.15), ("NL", 0.1)])
            firsts, lasts, city, lang = EU_NAMES[h.country]
            f, l = rng.choice(firsts), rng.choice(lasts)
            h.name, h.city, h.language = f"{f} {l}", city, lang
            fa, la = ascii_fold(f), ascii_fold(l).replace(" ", "")
            local_parts = [f"{fa}.{la}", f"{fa}{la}{rng.randint(1, 99)}", f"{fa[0]}.{la}{rng.randint(1, 999)}"]
        else:
            f, l = rng.choice(US_FIRST), rng.choice(US_LAST)
            h.country, h.name, h.language = "US", f"{f} {l}", "en"
            h.city = rng.choice(US_CITIES)[0]
            la = l.replace("'", "")
            local_parts = [f"{f}.{la}", f"{f}{la}{rng.randint(1, 99)}", f"{f[0]}{la}{rng.randint(10, 9999)}"]
        while True:
            email = f"{rng.choice(local_parts).lower()}@{rng.choice(EMAIL_DOMAINS[h.region])}"
            if email not in used_emails:
                break
            local_parts.append(f"{local_parts[0]}{rng.randint(100, 9999)}")
        used_emails.add(email)
        h.email = email
        while True:
            if h.region == "cn":
                phone = f"+861{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
            elif h.region == "us":
                area = rng.choice([a for c, a in US_CITIES if c == h.city])
                if rng.random() < 0.5:
                    phone = f"+1{area}55501{rng.randint(0, 99):02d}"
                else:
                    phone = f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            else:
                phone = {
                    "FR": lambda: f"+33{rng.choice('67')}{rng.randint(0, 99_999_999):08d}",
                    "DE": lambda: f"+4915{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}",
                    "IT": lambda: f"+393{rng.randint(20, 99)}{rng.randint(0, 9_999_999):07d}",
                    "ES": lambda: f"+346{rng.randint(0, 99_999_999):08d}",
                    "NL": lambda: f"+316{rng.randint(0, 99_999_999):08d}",
                }[h.country]()
            if phone not in used_phones:
                break
        used_phones.add(phone)
        h.phone = phone
        # Loyalty membership.
        offline = h.channel in ("offline", "both")
        if h.channel == "offline":
            member = rng.random() < 0.72
        elif h.link in ("alias", "loyalty_email"):
            member = True
        elif h.link == "phone":
            member = rng.random() < 0.5
        else:
            member = False
        h.member = f"HD{hid * 7919 % 100_000_000:08d}" if member and offline else None
        # The email the loyalty programme has, if any.
        if h.link == "loyalty_email":
            h.loyalty_email = h.email
        elif h.member and h.channel == "offline" and rng.random() < 0.4:
            h.loyalty_email = h.email
        else:
            h.loyalty_email = None
        h.devices = []
        h.shared_with = None
        if h.channel in ("online", "both"):
            h.devices.append(("web", "wc_" + "".join(rng.choice("0123456789abcdef") for _ in range(12))))
            if rng.random() < 0.45:
                h.devices.append(("app", uuid(rng)))
        people.append(h)
    # Households: a few online customers use a device of another customer.
    online = [h for h in people if h.devices]
    rng.shuffle(online)
    pairs = 0
    for a, b in zip(online[0::2], online[1::2]):
        if pairs >= max(1, len(online) // 60):
            break
        if a.region != b.region:
            continue
        b.devices.append(a.devices[-1])
        a.shared_with, b.shared_with = b.hid, a.hid
        pairs += 1
    return people


def ascii_fold(text):
    table = str.maketrans("éèêëÉàâäçîïôöüùûñíóúÜ", "eeeeEaaaciioouuuniouU")
    return text.translate(table).replace("ß", "ss")


def uuid(rng):
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    u = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"
    return u.upper() if rng.random() < 0.5 else u  # iOS writes it in capitals


# ---------------------------------------------------------------------------
# How each source spells identities
# ---------------------------------------------------------------------------

def spell_phone(rng, e164, source):
    """The phone as a person or a system writes it; normalises to e164."""
    if e164.startswith("+86"):
        n = e164[3:]
        spaced, dashed = f"{n[:3]} {n[3:7]} {n[7:]}", f"{n[:3]}-{n[3:7]}-{n[7:]}"
        forms = [n, n, spaced, dashed, f"+86 {spaced}", f"+86{n}", f"0086 {n}", f"(+86) {spaced}", f"+86-{dashed}"]
        if source == "pos":
            forms = [n, n, n, spaced, dashed, f"+86{n}"]
        form = rng.choice(forms)
    elif e164.startswith("+1"):
        a, b, c = e164[2:5], e164[5:8], e164[8:]
        form = rng.choice([f"+1 ({a}) {b}-{c}", f"+1 {a}-{b}-{c}", f"+1{a}{b}{c}", f"001 {a} {b} {c}", f"+1.{a}.{b}.{c}"])
    else:
        cc, n = e164[1:3], e164[3:]  # the European codes used here have two digits
        groups = " ".join(n[i:i + 2] for i in range(1, len(n), 2))
        form = rng.choice([f"+{cc} {n[:1]} {groups}" if cc in ("33", "31") else f"+{cc} {n[:3]} {n[3:]}",
                           f"+{cc}{n}", f"00{cc} {n}", f"+{cc}-{n[:3]}-{n[3:]}"])
    assert normalise_phone(form) == e164, (form, e164)
    return form


def spell_email(rng, email, messy):
    if not messy:
        return email
    local, _, domain = email.partition("@")
    form = rng.choice([
        f"{local.capitalize()}@{domain}",
        f"{local.upper()}@{domain.upper()}",
        f"{local}@{domain.capitalize()}",
        f" {local.title()}@{domain} ",
    ])
    assert normalise_email(form) == email
    return form


def spell_device(rng, device):
    if UUID_RE.match(device) and rng.random() < 0.15:
        return device.swapcase()  # the same id, written in the other case by another SDK version
    return device


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------

def at(day, seconds):
    return PERIOD_START + dt.timedelta(days=day, seconds=seconds)


def rfc3339(t, offset_hours):
    local = t.astimezone(dt.timezone(dt.timedelta(hours=offset_hours)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond // 1000:03d}"
    return text + ("Z" if offset_hours == 0 else f"{offset_hours:+03d}:00")


def epoch_ms(t):
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def us_offset(t):
    """US Eastern offset in hours in 2026 (daylight time 8 March - 1 November)."""
    start = dt.datetime(2026, 3, 8, 7, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 11, 1, 6, tzinfo=dt.timezone.utc)
    return -4 if start <= t < end else -5


def geometric(rng, mean, cap):
    n = 1
    while n < cap and rng.random() > 1 / mean:
        n += 1
    return n


class Row:
    """One record of a file, with what the connector must do with it."""
    __slots__ = ("cells", "key", "fault", "column", "identities", "event", "hid", "dup_of", "raw")

    def __init__(self, cells, key, identities, hid, event=True):
        self.cells = cells
        self.key = key  # source id (receipt number, member id, event id)
        self.fault = None  # reason code of a planted fault
        self.column = None  # the column (field) the connector names
        self.identities = identities  # [(kind, raw value)]
        self.event = event
        self.hid = hid
        self.dup_of = None
        self.raw = None  # bytes written instead of the encoded cells (bad encodings)


def web_events(rng, people):
    records = []  # (time, seq, dict, hid, kind)
    seq = 0

    def add(t, rec, h):
        nonlocal seq
        seq += 1
        records.append((t, seq, rec, h.hid))

    for h in people:
        if not h.devices:
            continue
        offset = 8 if h.region == "cn" else 0
        currency = CURRENCY[h.region]
        lo, hi = PRICE[h.region]
        partner = people[h.shared_with - 1] if h.shared_with else None
        shared = {d for d in h.devices if partner and d in partner.devices}
        sessions = geometric(rng, 1.1 + 1.0 * h.spend ** 2, 30)
        starts = sorted(at(rng.randrange(PERIOD_DAYS), rng.randint(7 * 3600, 23 * 3600) - offset * 3600)
                        + dt.timedelta(milliseconds=rng.randint(0, 999)) for _ in range(sessions))
        identified = set()  # devices this person has used signed in
        phone_given = h.link == "phone" or (h.channel == "online" and rng.random() < 0.2)
        for index, start in enumerate(starts):
            if index == 0 and h.shared_with and len(h.devices) > 1:
                device = h.devices[-1]  # make sure the shared device is used
            else:
                device = rng.choice(h.devices)
            kind, device_id = device
            signed_in = (index == 0 or device not in identified or device in shared or rng.random() < 0.7)
            ids = {"device_id": spell_device(rng, device_id)}
            if signed_in:
                ids = {"email": spell_email(rng, h.email, rng.random() < 0.1), **ids}
                identified.add(device)
            t = start
            if index == 0:
                traits = {"name": h.name, "city": h.city, "language": h.language}
                ident = dict(ids)
                if phone_given:
                    ident["phone"] = spell_phone(rng, h.phone, "web")
                add(t, {"type": "identify", "at": rfc3339(t, offset), "identities": ident, "traits": traits}, h)
                t += dt.timedelta(seconds=1)
            if h.link == "alias" and index == min(1, len(starts) - 1):
                add(t, {"type": "alias", "at": rfc3339(t, offset),
                        "identities": {"email": spell_email(rng, h.email, False), "member_id": h.member}}, h)
                t += dt.timedelta(seconds=1)

            def track(event, props):
                stamp = epoch_ms(t) if kind == "app" else rfc3339(t, offset)
                add(t, {"type": "track", "event": event, "at": stamp, "identities": dict(ids),
                        "properties": props}, h)

            category = rng.choice(WEB_PATHS[1:10])
            for _ in range(geometric(rng, 1.35, 8)):
                if kind == "app":
                    track("page_view", {"screen": rng.choice(APP_SCREENS), "channel": "app"})
                else:
                    track("page_view", {"path": rng.choice([category, category, rng.choice(WEB_PATHS)]), "channel": "web"})
                t += dt.timedelta(seconds=rng.randint(5, 240))
            if signed_in and rng.random() < 0.22 + 0.2 * h.spend:
                items = geometric(rng, 1.3, 4)
                track("add_to_cart", {"category": category.rsplit("/", 1)[-1], "items": items, "channel": kind})
                t += dt.timedelta(seconds=rng.randint(30, 600))
                if rng.random() < 0.35 + 0.4 * h.spend:
                    amount = round(rng.uniform(lo, hi) * items, 2)
                    track("purchase", {"order_id": f"WO-{seq:07d}", "amount": amount, "currency": currency,
                                       "items": items, "channel": kind})
    records.sort(key=lambda r: (r[0], r[1]))
    rows = []
    for n, (t, _, rec, hid) in enumerate(records, 1):
        rec = {"id": f"ev-{n:07d}", **rec}
        ids = list(rec["identities"].items())
        row = Row(rec, NDJSON_PARAMS["id_prefix"] + rec["id"], ids, hid, event=rec["type"] == "track")
        rows.append(row)
    return rows


def store_rows(rng, people):
    """Purchases, per chain: {file: [Row]} in time order."""
    out = {"stores_cn.csv": [], "stores_eu.csv": [], "stores_us.csv": []}
    for h in people:
        if h.channel == "online":
            continue
        file = f"stores_{h.region}.csv"
        visits = geometric(rng, 1.6 + 2.5 * h.spend, 15)
        if h.member and rng.random() < 0.12:
            visits = 0  # a member who did not come in during the period
        home = None
        for _ in range(visits):
            day = rng.randrange(PERIOD_DAYS)
            # Who the cashier keyed in: member card, phone, or both.
            if h.link == "phone":
                member, phone = (h.member if rng.random() < 0.4 else None), True
            elif h.member:
                r = rng.random()
                member, phone = h.member, r < 0.3
                if r > 0.85:
                    member = None
                    phone = True
            else:
                member, phone = None, True
            items = geometric(rng, 1.5, 6)
            lo, hi = PRICE[h.region]
            amount = round(rng.uniform(lo, hi) * (0.7 + 0.3 * items) * (0.6 + h.spend), 2)
            ids = []
            if h.region == "cn":
                home = home or rng.choice([s for s in CN_STORES if s[1][:2] == h.city] or CN_STORES)
                code, store = home if rng.random() < 0.85 else rng.choice(CN_STORES)
                t = at(day, rng.randint(10 * 3600, 21 * 3600 + 1800) - 8 * 3600)
                local = t.astimezone(dt.timezone(dt.timedelta(hours=8)))
                phone_text = spell_phone(rng, h.phone, "pos") if phone else ""
                cells = ["", code, store, h.member if member else "", phone_text,
                         local.strftime("%Y年%m月%d日 %H:%M"), f"{amount:.2f}", "CNY", str(items),
                         rng.choice(CN_CATEGORIES), rng.choice(CN_PAYMENTS)]
                ids = [("member_id", cells[3]), ("phone", cells[4])]
                key_date = local.strftime("%Y%m%d")
            elif h.region == "eu":
                home = home or rng.choice(EU_STORES[h.country])
                code, store = home
                t = at(day, rng.randint(9 * 3600, 19 * 3600))
                phone_text = spell_phone(rng, h.phone, "pos") if phone else ""
                cells = ["", code, store, h.country, h.member if member else "", phone_text,
                         t.strftime("%d/%m/%Y %H:%M"), f"{amount:.2f}".replace(".", ","), "EUR", str(items),
                         rng.choice(EU_CATEGORIES)]
                ids = [("member_id", cells[4]), ("phone", cells[5])]
                key_date = t.strftime("%Y%m%d")
            else:
                home = home or rng.choice(US_STORES)
                store, address = home if rng.random() < 0.8 else rng.choice(US_STORES)
                t = at(day, rng.randint(15 * 3600, 26 * 3600))
                off = us_offset(t)
                local = t.astimezone(dt.timezone(dt.timedelta(hours=off)))
                phone_text = spell_phone(rng, h.phone, "pos") if phone else ""
                note = rng.choice(US_NOTES) if rng.random() < 0.06 else ""
                cells = ["", store, address, h.member if member else "", phone_text,
                         local.strftime("%m/%d/%Y %H:%M ") + f"{off:+03d}00", f"{amount:.2f}", "USD", str(items),
                         rng.choice(US_CATEGORIES), note]
                ids = [("member_id", cells[3]), ("phone", cells[4])]
                key_date = None
                code = store
            row = Row(cells, None, [i for i in ids if i[1]], h.hid)
            row.raw = (t, code, key_date)
            out[file].append(row)
    # Receipt numbers, in time order per store and day.
    for file, rows in out.items():
        rows.sort(key=lambda r: r.raw[0])
        counters = collections.Counter()
        for n, row in enumerate(rows, 1):
            t, code, key_date = row.raw
            row.raw = None
            if file == "stores_cn.csv":
                counters[(code, key_date)] += 1
                row.cells[0] = f"{code}-{key_date}-{counters[(code, key_date)]:04d}"
            elif file == "stores_eu.csv":
                counters[code] += 1
                row.cells[0] = f"{code}{key_date[2:]}{counters[code]:05d}"
            else:
                row.cells[0] = f"R{8_200_000 + n * 3}"
            row.key = f"{FILES[file]['mapping']['source']}:{row.cells[0]}"
    return out


def loyalty_rows(rng, people):
    rows = []
    for h in people:
        if not h.member:
            continue
        phone = spell_phone(rng, h.phone, "loyalty") if (h.region == "cn" or rng.random() < 0.85) else ""
        email = spell_email(rng, h.loyalty_email, rng.random() < 0.35) if h.loyalty_email else ""
        tier = pick(rng, [("blue", 0.55), ("silver", 0.28), ("gold", 0.13), ("black", 0.04)])
        birthday = "" if rng.random() < 0.2 else \
            dt.date(rng.randint(1955, 2006), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        since = dt.date(rng.randint(2012, 2025), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        cells = [h.member, phone, email, h.name, tier, birthday, h.city, since]
        ids = [(k, v) for k, v in zip(("member_id", "phone", "email"), cells[:3]) if v]
        rows.append(Row(cells, f"halden-loyalty:{h.member}#traits", ids, h.hid, event=False))
    rng.shuffle(rows)
    rows.sort(key=lambda r: r.cells[7])  # the export lists members by join date
    return rows


# ---------------------------------------------------------------------------
# Dirt
# ---------------------------------------------------------------------------

def plant_csv(rng, file, rows, plan):
    """Plants faults in distinct good rows and appends duplicates."""
    spec = FILES[file]
    header = spec["header"]
    candidates = list(rows)
    rng.shuffle(candidates)

    def take(pred=lambda row: True):
        # Rows with a multi-line or quoted note stay good: they test the
        # row numbers and quoting of the rows around them.
        for k, row in enumerate(candidates):
            if row.fault is None and not any("\n" in c or '"' in c for c in row.cells) and pred(row):
                del candidates[k]
                return row
        raise RuntimeError("no row left to plant in")

    for reason, values in plan.items():
        for value in values:
            if reason == "bad_date":
                row = take()
                col = header.index(spec["time"][0])
                row.cells[col] = value(row.cells[col]) if callable(value) else value
            elif reason == "bad_number":
                row = take()
                col = header.index(spec["numbers"][0])
                row.cells[col] = value
            elif reason == "missing_identity":
                row = take()
                if spec["required_identity"]:
                    col = header.index(spec["required_identity"])
                    row.cells[col] = ""
                else:
                    col = header.index(spec["identities"][0])
                    for name in spec["identities"]:
                        row.cells[header.index(name)] = ""
                row.identities = [(k, v) for k, v in row.identities if k != "member_id"] \
                    if spec["required_identity"] else []
            elif reason == "bad_encoding":
                col = header.index("门店名称")
                row = take(lambda r: len(r.cells[col]) % 2 == 1)
                name = row.cells[col]
                if value == "utf8":
                    row.raw = name.encode("utf-8")
                else:
                    row.raw = name[:2].encode("gb18030") + b"\xff" + name[2:].encode("gb18030")
                try:
                    row.raw.decode("gb18030")
                except UnicodeDecodeError:
                    pass
                else:
                    raise AssertionError(f"{row.raw!r} is valid GB18030")
            else:
                raise ValueError(reason)
            row.fault, row.column = reason, header[col]
    # Exact duplicates of good rows: an export that overlapped the previous one.
    for _ in range(DUPLICATES[file]):
        original = take()
        copy = Row(list(original.cells), original.key, list(original.identities), original.hid, original.event)
        copy.dup_of = original
        original.fault = "duplicated"  # keeps it from later planting; it is a good row
        at_index = rows.index(original) + 1 + rng.randint(0, 40)
        rows.insert(min(at_index, len(rows)), copy)
    for row in rows:
        if row.fault == "duplicated":
            row.fault = None


DUPLICATES = {"stores_cn.csv": 14, "stores_eu.csv": 9, "stores_us.csv": 6, "loyalty_members.csv": 5}


CSV_DIRT = {
    "stores_cn.csv": {
        # The day keyed in by hand: 30 February, 31 April, month 13.
        "bad_date": [lambda t: "2026年02月30日" + t[11:], lambda t: "2026年04月31日" + t[11:],
                     lambda t: t[:5] + "13" + t[7:]],
        "bad_number": ["1299元", "¥468.00", "——"],
        "missing_identity": [None] * 4,
        # A store name with a stray 0xFF byte, and one written in UTF-8
        # (an odd number of bytes above 0x7F: GB18030 is left with half a
        # character at the end of the cell).
        "bad_encoding": ["stray_byte", "utf8"],
    },
    "stores_eu.csv": {
        # 31 February, 29 February of a common year, and one store's till
        # writing ISO dates.
        "bad_date": [lambda t: "31/02/2026" + t[10:], lambda t: "29/02/2026" + t[10:],
                     lambda t: f"{t[6:10]}-{t[3:5]}-{t[0:2]}{t[10:]}"],
        "bad_number": ["1.299,00", "N/A", "129.90"],
        "missing_identity": [None] * 3,
    },
    "stores_us.csv": {
        # 30 February, and a day-first date from a European register.
        "bad_date": [lambda t: "02/30/2026" + t[10:], lambda t: f"{t[3:5]}/{t[0:2]}{t[5:]}" if int(t[3:5]) > 12 else "14/03/2026" + t[10:]],
        "bad_number": ["$84.50", "1,299.00"],
        "missing_identity": [None] * 3,
    },
    "loyalty_members.csv": {
        "missing_identity": [None] * 4,
    },
}

NDJSON_DIRT = {"bad_date": 3, "missing_identity": 3, "bad_json": 2, "duplicates": 12}


def plant_ndjson(rng, rows):
    """Corrupts a few signed-in track events (never a device's first
    appearance, so no device-only event is left without its owner) and
    re-sends a few lines."""
    seen_devices = set()
    eligible = []
    for i, row in enumerate(rows):
        rec = row.cells
        devices = [v for k, v in row.identities if k == "device_id"]
        first = any(normalise("device_id", d) not in seen_devices for d in devices)
        seen_devices.update(normalise("device_id", d) for d in devices)
        if rec["type"] == "track" and "email" in rec["identities"] and not first:
            eligible.append(i)
    rng.shuffle(eligible)
    for reason in ("bad_date", "missing_identity", "bad_json"):
        for _ in range(NDJSON_DIRT[reason]):
            row = rows[eligible.pop()]
            row.fault = reason
            if reason == "bad_date":
                row.cells["at"] = rng.choice(["2026-13-05T10:00:00Z", "yesterday", "2026-02-30T08:15:00+08:00"])
                row.column = "at"
            elif reason == "missing_identity":
                row.cells["identities"] = {}
                row.identities = []
                row.column = "identities"
            else:
                row.column = None
                row.raw = json.dumps(row.cells, ensure_ascii=False, separators=(",", ":"))[:-rng.randint(8, 30)]
    for _ in range(NDJSON_DIRT["duplicates"]):
        original = rows[eligible.pop()]
        copy = Row(dict(original.cells), original.key, list(original.identities), original.hid, original.event)
        copy.dup_of = original
        rows.insert(rows.index(original) + rng.randint(1, 25), copy)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def write_csv(path, file, rows):
    spec = FILES[file]
    encoding = spec["params"]["encoding"]
    delimiter = spec["params"]["delimiter"]
    newline = spec["newline"]

    def encode(cells):
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter, lineterminator=newline).writerow(cells)
        return buf.getvalue().encode(encoding)

    out = bytearray(spec["bom"])
    out += encode(spec["header"])
    line = 2
    for row in rows:
        if row.raw is not None:
            # The named cell's bytes replace an ASCII marker in the encoded row.
            col = spec["header"].index(row.column)
            cells = list(row.cells)
            cells[col] = "\x00"
            data = encode(cells)
            assert data.count(b"\x00") == 1
            data = data.replace(b"\x00", row.raw)
        else:
            data = encode(row.cells)
        row.raw = (line, data)
        line += data.count(b"\n")
        out += data
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def write_ndjson(path, rows):
    out = []
    for line, row in enumerate(rows, 1):
        text = row.raw if isinstance(row.raw, str) else json.dumps(row.cells, ensure_ascii=False, separators=(",", ":"))
        row.raw = (line, text)
        out.append(text)
    data = ("\n".join(out) + "\n").encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# ---------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------

def file_truth(name, connector, rows):
    """rows: [(line, record number, reason or None, column, source id, is event,
    [(kind, raw)])] in file order."""
    rejected = collections.OrderedDict()
    accepted = 0
    seen = {}
    duplicates = []
    events = 0
    records = collections.Counter()
    for line, number, reason, column, key, is_event, _ in rows:
        if reason:
            entry = rejected.setdefault(reason, {"count": 0, "rows": [], "records": [], "columns": []})
            entry["count"] += 1
            entry["rows"].append(line)
            entry["records"].append(number)
            entry["columns"].append(column)
            continue
        accepted += 1
        if key in seen:
            duplicates.append({"row": line, "record": number, "source_id": key, "first_row": seen[key]})
            continue
        seen[key] = line
        if is_event:
            events += 1
    return {
        "connector": connector,
        "rows": len(rows),
        "accepted": accepted,
        "rejected": sum(e["count"] for e in rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "duplicates": {"count": len(duplicates), "rows": duplicates},
        "events_stored": events,
    }


def tags_of(name, is_event):
    if name == NDJSON:
        return {"online", "web_event"} if is_event else {"online"}
    if name == "loyalty_members.csv":
        return {"offline", "loyalty"}
    return {"offline", "store_event"}


def resolve(files, order):
    """Replays resolution over the accepted rows of the files in `order`:
    per-file counts and the people at the end."""
    resolver = Resolver()
    per_file = {}
    for name in order:
        before = (resolver.created, resolver.merged, resolver.matched, resolver.anonymous_new)
        for line, number, reason, column, key, is_event, identities in files[name]:
            if reason:
                continue
            canon = [(k, normalise(k, v)) for k, v in identities if v.strip()]
            resolver.resolve(canon, tags_of(name, is_event))
        per_file[name] = {
            "new_subjects": resolver.created - before[0],
            "merges": resolver.merged - before[1],
            "matched_records": resolver.matched - before[2],
            "device_only_new_subjects": resolver.anonymous_new - before[3],
        }
    return per_file, resolver.people()


def truth_of(parsed):
    """parsed: {file: rows as in file_truth}: the whole truth document."""
    files = {}
    for name, rows in parsed.items():
        files[name] = file_truth(name, "ndjson" if name == NDJSON else "csv", rows)
    per_file, people = resolve(parsed, IMPORT_ORDER)
    # The people do not depend on the order of the files.
    _, reverse = resolve(parsed, list(reversed(IMPORT_ORDER)))
    assert reverse == people, (reverse, people)
    for name in IMPORT_ORDER:
        files[name]["resolution_in_import_order"] = per_file[name]
    events = {
        "stored": sum(f["events_stored"] for f in files.values()),
        "by_file": {name: f["events_stored"] for name, f in files.items()},
    }
    return {"files": files, "people": people, "events": events}


def rows_for_truth(name, rows):
    out = []
    for number, row in enumerate(rows, 1):
        line = row.raw[0]
        out.append((line, number, row.fault, row.column, row.key, row.event, row.identities))
    return out


def generate(seed, customers, out_dir):
    rng = random.Random(seed)
    people = make_people(rng, customers)
    web = web_events(rng, people)
    stores = store_rows(rng, people)
    loyalty = loyalty_rows(rng, people)
    us = stores["stores_us.csv"]
    # A note that runs over two lines, and one with commas and quotes.
    plain = [r for r in us if not r.cells[-1]]
    plain[len(plain) // 3].cells[-1] = "Customer will collect on Saturday.\nHold at the front desk."
    plain[len(plain) // 2].cells[-1] = 'Wants the "Aster" boot in 9, 9.5 and 10; call when in'
    plant_ndjson(rng, web)
    for file, rows in stores.items():
        plant_csv(rng, file, rows, CSV_DIRT[file])
    plant_csv(rng, "loyalty_members.csv", loyalty, CSV_DIRT["loyalty_members.csv"])

    os.makedirs(os.path.join(out_dir, "mappings"), exist_ok=True)
    sizes = {}
    all_rows = {}
    for file, rows in list(stores.items()) + [("loyalty_members.csv", loyalty)]:
        sizes[file] = write_csv(os.path.join(out_dir, file), file, rows)
        all_rows[file] = rows
    sizes[NDJSON] = write_ndjson(os.path.join(out_dir, NDJSON), web)
    all_rows[NDJSON] = web
    for file, spec in FILES.items():
        stem = file[:-4]
        write_json(os.path.join(out_dir, "mappings", f"{stem}.json"), spec["mapping"])
        write_json(os.path.join(out_dir, "mappings", f"{stem}.params.json"), spec["params"])
    write_json(os.path.join(out_dir, "mappings", "web_events.params.json"), NDJSON_PARAMS)

    parsed = {name: rows_for_truth(name, all_rows[name]) for name in IMPORT_ORDER}
    truth = truth_of(parsed)
    # Which customer each resolved person is: no person may hold two
    # customers (a false merge); a customer may be two people.
    resolver = Resolver()
    targets = []
    for name in IMPORT_ORDER:
        for row in all_rows[name]:
            if row.fault is None:
                canon = [(k, normalise(k, v)) for k, v in row.identities if v.strip()]
                targets.append((row.hid, resolver.resolve(canon, tags_of(name, row.event))))
    subjects_of = collections.defaultdict(set)
    customers_of = collections.defaultdict(set)
    for hid, target in targets:
        subjects_of[hid].add(resolver.find(target))
        customers_of[resolver.find(target)].add(hid)
    assert all(len(c) == 1 for c in customers_of.values()), "two customers resolved to one person"
    assert len(customers_of) == truth["people"]["distinct"]
    split = collections.Counter(len(s) for s in subjects_of.values() if len(s) > 1)
    # Every device-only event follows its device's signed-in use, so no
    # anonymous subject is ever created: the count does not depend on it.
    assert resolver.anonymous_new == 0
    humans = collections.Counter(h.channel for h in people)
    links = collections.Counter(h.link for h in people if h.link)
    truth = {
        "about": "What importing these files into a tenant with default_country_code 86 and the default "
                 "merge_on (email, phone, member_id) must report. Rows are numbered as the connectors "
                 "report them (file line of the record's first line; a CSV header is line 1); records "
                 "count data records from 1. See README.md.",
        "generator": {"seed": seed, "customers": customers},
        "tenant": {"default_country_code": DEFAULT_COUNTRY_CODE, "merge_on": list(MERGING), "canonical_gmail": True},
        "import_order": IMPORT_ORDER,
        "parameters": {**{f: {**FILES[f]["params"], "mapping": f"mappings/{f[:-4]}.json"} for f in FILES},
                       NDJSON: NDJSON_PARAMS},
        **truth,
        "customers": {
            "generated": customers,
            "online": humans["online"],
            "offline": humans["offline"],
            "both": humans["both"],
            "both_linked_by": dict(sorted(links.items())),
            "shared_devices": sum(1 for h in people if h.shared_with) // 2,
            "unseen": customers - len(subjects_of),
            "split": {f"into_{k}": v for k, v in sorted(split.items())},
            "false_merges": 0,
            "note": "The customers the generator invented. A customer who shops both online and in a store "
                    "without any shared email, phone or member id ('none') is two people to Tessera; a "
                    "customer whose only rows were rejected is not seen at all (unseen); split counts customers "
                    "who end as more than one person. people.* counts resolved persons.",
        },
    }
    write_json(os.path.join(out_dir, "truth.json"), truth)
    return truth, sizes


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------
# --check: read the files back on their own and compare with truth.json
# ---------------------------------------------------------------------------

def check_csv(path, file):
    spec = FILES[file]
    params = spec["params"]
    data = open(path, "rb").read()
    if data.startswith(b"\xef\xbb\xbf"):
        assert params["encoding"] == "utf-8", "a UTF-8 mark in a file that is not UTF-8"
        data = data[3:]
    text = data.decode(params["encoding"], errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=params["delimiter"])
    header = [c.strip() for c in next(reader)]
    assert header == spec["header"], (file, header)
    col = {name: i for i, name in enumerate(header)}
    decimal = params["decimal"]
    number_re = re.compile(r"^[+-]?\d+(" + re.escape(decimal) + r"\d+)?$")
    out = []
    number = 0
    last_line = reader.line_num
    for cells in reader:
        line = last_line + 1
        last_line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        number += 1
        reason = column = None
        bad = [i for i, c in enumerate(cells) if any("\udc80" <= ch <= "\udcff" for ch in c)]
        ids = [(IDENTITY_KINDS[file][name], cells[col[name]]) for name in spec["identities"] if cells[col[name]]]
        if bad:
            reason, column = "bad_encoding", header[bad[0]]
        elif len(cells) > len(header):
            reason = "bad_cell_count"
        elif spec["required_identity"] and not cells[col[spec["required_identity"]]]:
            reason, column = "missing_identity", spec["required_identity"]
        elif not ids:
            reason, column = "missing_identity", spec["identities"][0]
        elif spec["time"] and not parse_time(cells[col[spec["time"][0]]], spec["time"][1]):
            reason, column = "bad_date", spec["time"][0]
        else:
            for name in spec["numbers"]:
                if not number_re.match(cells[col[name]]):
                    reason, column = "bad_number", name
                    break
            for name in spec["integers"]:
                if not reason and cells[col[name]] and not re.match(r"^\d+$", cells[col[name]]):
                    reason, column = "bad_number", name
        key = f"{spec['mapping']['source']}:{cells[col[spec['source_id']]]}" + ("" if spec["event"] else "#traits")
        out.append((line, number, reason, column, key, spec["event"], ids))
    return out


def parse_time(text, pattern):
    try:
        dt.datetime.strptime(text, pattern)
        return True
    except ValueError:
        return False


def check_ndjson(path):
    out = []
    with open(path, "rb") as f:
        data = f.read()
    for line, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        reason = column = None
        ids, key, is_event = [], None, False
        try:
            rec = json.loads(raw)
        except ValueError:
            reason = "bad_json"
        else:
            key = NDJSON_PARAMS["id_prefix"] + str(rec.get("id"))
            ids = [(k, v) for k, v in rec.get("identities", {}).items() if isinstance(v, str) and v.strip()]
            is_event = rec.get("type", "track") == "track"
            if not ids:
                reason, column = "missing_identity", "identities"
            elif is_event:
                stamp = rec.get("at")
                if isinstance(stamp, str):
                    try:
                        dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                    except ValueError:
                        reason, column = "bad_date", "at"
                elif not isinstance(stamp, int):
                    reason, column = "bad_date", "at"
        out.append((line, len(out) + 1, reason, column, key, is_event, ids))
    return out


def check(directory):
    with open(os.path.join(directory, "truth.json"), encoding="utf-8") as f:
        truth = json.load(f)
    parsed = {}
    for name in IMPORT_ORDER:
        path = os.path.join(directory, name)
        parsed[name] = check_ndjson(path) if name == NDJSON else check_csv(path, name)
    again = truth_of(parsed)
    problems = []
    for name in IMPORT_ORDER:
        mine, theirs = again["files"][name], truth["files"][name]
        for key in mine:
            if mine[key] != theirs.get(key):
                problems.append(f"{name}: {key}: read back {json.dumps(mine[key], ensure_ascii=False)[:300]}, "
                                f"truth.json {json.dumps(theirs.get(key), ensure_ascii=False)[:300]}")
    for key in ("people", "events"):
        if again[key] != truth[key]:
            problems.append(f"{key}: read back {again[key]}, truth.json {truth[key]}")
    # Each file's mapping names columns of its header, and its parameters are the ones expected.
    for file, spec in FILES.items():
        with open(os.path.join(directory, "mappings", file[:-4] + ".json"), encoding="utf-8") as f:
            mapping = json.load(f)
        columns = set(mapping["identities"]) | set(mapping.get("traits", {}))
        if "event" in mapping:
            columns |= set(mapping["event"]["properties"]) | {mapping["event"]["time"]["column"]}
        columns.add(mapping["source_id"]["column"])
        missing = columns - set(spec["header"])
        if missing:
            problems.append(f"mappings/{file[:-4]}.json names columns not in the header: {sorted(missing)}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    f = truth["files"]
    print(f"ok: {sum(x['rows'] for x in f.values())} rows in {len(f)} files, "
          f"{sum(x['rejected'] for x in f.values())} rejected, "
          f"{sum(x['duplicates']['count'] for x in f.values())} duplicates, "
          f"{truth['events']['stored']} events stored, {truth['people']['distinct']} people "
          f"({truth['people']['online_only']} online only, {truth['people']['offline_only']} offline only, "
          f"{truth['people']['both']} both)")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--check", metavar="DIR", help="verify DIR's files against its truth.json")
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    if args.customers < 200:
        parser.error("--customers must be at least 200 (the planted dirt needs rows to plant in)")
    truth, sizes = generate(args.seed, args.customers, args.out)
    for name in IMPORT_ORDER:
        f = truth["files"][name]
        print(f"{name:22} {sizes[name]:>9,} bytes {f['rows']:>7,} rows {f['accepted']:>7,} accepted "
              f"{f['rejected']:>3} rejected {f['duplicates']['count']:>3} duplicates")
    p = truth["people"]
    print(f"{truth['events']['stored']:,} events stored; {p['distinct']:,} people: {p['online_only']:,} online only, "
          f"{p['offline_only']:,} offline only, {p['both']:,} both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
