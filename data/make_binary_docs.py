#!/usr/bin/env python3
"""Generate the PDF and DOCX documents of the Larkspur sample corpus.

The Larkspur Analytics handbook (data/corpus/) is mostly Markdown, HTML and
plain text, written by hand. Penny must also ingest PDF and Word files, so a
few handbook documents are kept here as structured text and rendered into real
.pdf (reportlab) and .docx (python-docx) files. Keeping the source text in this
script means the binary files can be reviewed in a diff and regenerated at any
time.

Usage (from the repository root, with a scratch venv outside the repo):

    python3 -m venv /tmp/corpusvenv
    /tmp/corpusvenv/bin/pip install python-docx reportlab
    /tmp/corpusvenv/bin/python data/make_binary_docs.py

Output is written next to the other corpus files under data/corpus/.
Timestamps and document IDs are fixed, so re-running the script on the same
library versions produces byte-identical files and a clean `git status`.

Each document is a list of blocks:
    ("h1", text)            document title
    ("h2", text)            section heading
    ("h3", text)            sub-section heading
    ("p", text)             paragraph
    ("ul", [text, ...])     bulleted list
    ("table", [header_row, row, ...])   table; every row is a list of cells
All text is plain Unicode (no markup).
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXED_DATE = dt.datetime(2025, 1, 6, 9, 0, 0)  # handbook publication date
AUTHOR = "Larkspur Analytics Ltd"

# ---------------------------------------------------------------------------
# Document texts
# ---------------------------------------------------------------------------

PUBLIC_HOLIDAYS_2025 = [
    ("h1", "Public Holidays and Larkspur Days 2025"),
    (
        "p",
        "Owner: People Team (people@larkspur.example). Applies to: all employees. "
        "This calendar lists the days on which each Larkspur office is closed in 2025. "
        "These days are in addition to your annual leave entitlement of 25 days "
        "(rising with service), which is explained in leave/annual-leave.md.",
    ),
    ("h2", "1. Which holidays apply to you"),
    (
        "ul",
        [
            "You observe the public holidays of the office named in your contract, even when you are "
            "working from another office, travelling on business or working from abroad.",
            "Fully remote employees observe the holidays of the office they are attached to in Meadow.",
            "Part-time employees receive public holidays pro rata to their contracted hours, as set out "
            "in leave/annual-leave.md.",
            "If a holiday falls on a weekend, it is moved to the next working day only where the "
            "table says so (as with UK bank holidays). Portuguese holidays that fall on a weekend "
            "are not moved.",
        ],
    ),
    ("h2", "2. Leeds (England) - 8 bank holidays"),
    (
        "table",
        [
            ["Date", "Day", "Holiday"],
            ["1 January", "Wednesday", "New Year's Day"],
            ["18 April", "Friday", "Good Friday"],
            ["21 April", "Monday", "Easter Monday"],
            ["5 May", "Monday", "Early May bank holiday"],
            ["26 May", "Monday", "Spring bank holiday"],
            ["25 August", "Monday", "Summer bank holiday"],
            ["25 December", "Thursday", "Christmas Day"],
            ["26 December", "Friday", "Boxing Day"],
        ],
    ),
    ("h2", "3. Lisbon (Portugal) - 15 holidays"),
    (
        "p",
        "The Lisbon office observes the 13 Portuguese national holidays, the Lisbon municipal "
        "holiday (Santo António) and Carnival Tuesday, which Larkspur grants as a customary "
        "day off although it is not a statutory holiday. Three of the 15 fall on a weekend in "
        "2025, so 12 of them are working days off.",
    ),
    (
        "table",
        [
            ["Date", "Day", "Holiday"],
            ["1 January", "Wednesday", "Ano Novo (New Year's Day)"],
            ["4 March", "Tuesday", "Carnaval (granted by Larkspur)"],
            ["18 April", "Friday", "Sexta-feira Santa (Good Friday)"],
            ["20 April", "Sunday", "Páscoa (Easter Sunday)"],
            ["25 April", "Friday", "Dia da Liberdade (Freedom Day)"],
            ["1 May", "Thursday", "Dia do Trabalhador (Labour Day)"],
            ["10 June", "Tuesday", "Dia de Portugal"],
            ["13 June", "Friday", "Santo António (Lisbon municipal holiday)"],
            ["19 June", "Thursday", "Corpo de Deus (Corpus Christi)"],
            ["15 August", "Friday", "Assunção de Nossa Senhora (Assumption)"],
            ["5 October", "Sunday", "Implantação da República (Republic Day)"],
            ["1 November", "Saturday", "Dia de Todos os Santos (All Saints' Day)"],
            ["1 December", "Monday", "Restauração da Independência"],
            ["8 December", "Monday", "Imaculada Conceição (Immaculate Conception)"],
            ["25 December", "Thursday", "Natal (Christmas Day)"],
        ],
    ),
    ("h2", "4. Toronto (Ontario) - 10 holidays"),
    (
        "p",
        "The Toronto office observes the 9 Ontario statutory holidays plus the Civic Holiday "
        "on the first Monday of August, which Larkspur grants as an extra paid day.",
    ),
    (
        "table",
        [
            ["Date", "Day", "Holiday"],
            ["1 January", "Wednesday", "New Year's Day"],
            ["17 February", "Monday", "Family Day"],
            ["18 April", "Friday", "Good Friday"],
            ["19 May", "Monday", "Victoria Day"],
            ["1 July", "Tuesday", "Canada Day"],
            ["4 August", "Monday", "Civic Holiday (granted by Larkspur)"],
            ["1 September", "Monday", "Labour Day"],
            ["13 October", "Monday", "Thanksgiving"],
            ["25 December", "Thursday", "Christmas Day"],
            ["26 December", "Friday", "Boxing Day"],
        ],
    ),
    ("h2", "5. Larkspur days (end-of-year closure)"),
    (
        "p",
        "All offices close between Christmas and New Year. The working days in that period "
        "that are not public holidays are given as paid Larkspur days. They are not deducted "
        "from annual leave and do not need to be booked in Meadow.",
    ),
    (
        "table",
        [
            ["Office", "Larkspur days 2025", "Number of days"],
            ["Leeds", "29, 30 and 31 December", "3"],
            ["Lisbon", "26, 29, 30 and 31 December", "4"],
            ["Toronto", "29, 30 and 31 December", "3"],
        ],
    ),
    (
        "p",
        "The offices reopen on Friday 2 January 2026. Lisbon receives an extra Larkspur day on "
        "26 December because Boxing Day is not a public holiday in Portugal.",
    ),
    ("h2", "6. Working on a public holiday or Larkspur day"),
    (
        "ul",
        [
            "Nobody is expected to work on a public holiday or Larkspur day, except engineers on the "
            "on-call rota and people covering a pre-agreed client event.",
            "If you are asked to work on one of these days, you receive a day off in lieu, to be taken "
            "within three months, in addition to any on-call or overtime pay (see "
            "engineering/on-call-policy.pdf and hr/working-hours-and-flexible-working.md).",
            "Travelling on business on a public holiday also earns one day of time off in lieu, as "
            "set out in the Business Travel Policy (travel/travel-policy.md).",
            "The company-wide engineering change freeze runs from 19 December to 2 January "
            "(engineering/code-review-and-release.md).",
        ],
    ),
    ("h2", "7. Totals for 2025"),
    (
        "table",
        [
            ["Office", "Public holidays on working days", "Larkspur days", "Total closure days"],
            ["Leeds", "8", "3", "11"],
            ["Lisbon", "12", "4", "16"],
            ["Toronto", "10", "3", "13"],
        ],
    ),
    ("p", "Questions about this calendar: people@larkspur.example."),
]

TRAVEL_BOOKING_GUIDE = [
    ("h1", "Travel Booking Guide: Compass and Northbound Travel"),
    (
        "p",
        "Owner: Travel (travel@larkspur.example). Updated: January 2025. This guide explains "
        "how to book business travel. The rules on what you may book (class of travel, hotel "
        "caps, lead times) are in the Business Travel Policy (travel/travel-policy.md) and the "
        "per-diem rates (travel/per-diem-rates.html).",
    ),
    ("h2", "1. The tools"),
    (
        "ul",
        [
            "Compass is Larkspur's travel booking portal, reached through Gatehouse or the Compass "
            "mobile app. It shows flights, rail, hotels and car hire at Larkspur's negotiated rates.",
            "Northbound Travel is our travel management company. Northbound agents handle complex "
            "itineraries, group bookings, changes and emergencies, and they run Compass for us.",
            "Tally is used after the trip to claim per diems and any costs not booked in Compass.",
        ],
    ),
    ("h2", "2. Booking a trip step by step"),
    (
        "ol",
        [
            "Open Compass and choose New trip. Enter the destination, dates, purpose and the client "
            "project code if the trip is chargeable to a client.",
            "Compass estimates the total cost of the trip, including the per diems for the "
            "destination, and shows the destination's risk rating.",
            "Submit the trip request. Compass routes it for approval using the bands in "
            "expenses/approval-limits.html. High-risk destinations also go to Security.",
            "Once approved, you receive an email and the trip is unlocked for booking. Approval is "
            "valid for 14 days; after that the request must be resubmitted.",
            "Book flights, rail and hotel in Compass. Within the policy, selections are confirmed "
            "instantly. Out-of-policy choices (for example a hotel above the city cap) show a red "
            "flag and need the approval described in the policy before they are ticketed.",
            "Your itinerary, e-tickets and insurance details appear in the Compass app and are emailed to you.",
        ],
    ),
    (
        "p",
        "Compass bookings are paid centrally by Larkspur and charged to your team's cost "
        "centre, so they do not appear on your corporate card and you do not claim them in "
        "Tally.",
    ),
    ("h2", "3. Contacting Northbound Travel"),
    (
        "table",
        [
            ["Channel", "Details", "Hours"],
            ["Email", "larkspur@northbound.example", "Answered Monday to Friday, 08:00 to 18:00 UK time"],
            ["Phone (UK and Portugal)", "+44 113 496 0780", "Monday to Friday, 08:00 to 18:00 UK time"],
            ["Phone (Canada)", "+1 416 555 0160", "Monday to Friday, 08:00 to 18:00 Toronto time"],
            ["Emergency line", "+44 113 496 0781", "24 hours, for travellers already on a trip"],
            ["Group bookings (8 or more travellers)", "groups@northbound.example", "Book at least 6 weeks ahead"],
        ],
    ),
    ("h2", "4. Booking fees"),
    (
        "p",
        "Northbound charges a fee per booking, which is added to the trip cost and charged to "
        "your cost centre. Using Compass online is the cheapest option, so please call or email "
        "only when you need help.",
    ),
    (
        "table",
        [
            ["Type of booking", "Fee per booking"],
            ["Online in Compass (flight, rail or hotel)", "£6 / €7 / CA$10"],
            ["Offline by phone or email", "£22 / €25 / CA$38"],
            ["Change or cancellation handled by an agent", "£15 / €17 / CA$26"],
            ["Emergency line call (out of hours)", "£35 / €40 / CA$60 per call"],
            ["Visa and passport advice", "No charge"],
        ],
    ),
    ("h2", "5. Changes and cancellations"),
    (
        "ul",
        [
            "Change or cancel bookings in Compass under My trips whenever possible.",
            "Hotels booked through Compass can normally be cancelled without charge until 18:00 local "
            "time on the day before arrival. Later cancellations and no-shows are charged to your "
            "cost centre.",
            "Non-refundable fares may be chosen only when the trip is unlikely to change. If you "
            "cancel a non-refundable ticket, Northbound records it as an unused ticket. Unused "
            "tickets can usually be reused on the same airline within 12 months, and Compass offers "
            "them automatically on your next booking.",
            "If your travel plans change during a trip (for example a missed connection), call the "
            "Northbound emergency line. Do not buy a new ticket yourself unless the line cannot help "
            "within 30 minutes.",
        ],
    ),
    ("h2", "6. Special situations"),
    ("h3", "Travelling with colleagues"),
    (
        "p",
        "Add colleagues as co-travellers on one trip request so that Northbound can seat you "
        "together and share taxis. Each traveller still needs their own approval.",
    ),
    ("h3", "Guests and candidates"),
    (
        "p",
        "Travel for job candidates, clients or guest speakers is booked by the host through "
        "Northbound by email, quoting the cost centre. Compass cannot be used for people "
        "without a Larkspur account.",
    ),
    ("h3", "Accessibility and medical needs"),
    (
        "p",
        "Record accessibility needs (for example wheelchair assistance or a ground-floor room) "
        "in your Compass profile once, and Northbound applies them to every booking.",
    ),
    ("h3", "Loyalty programmes"),
    (
        "p",
        "Add your airline, rail and hotel loyalty numbers to your Compass profile. You keep the "
        "points, as the travel policy allows, but do not choose a more expensive option to "
        "earn them.",
    ),
    ("h2", "7. After the trip"),
    (
        "ul",
        [
            "Claim per diems and other costs (taxis, local transport, visa fees) in Tally within 60 "
            "days of your return (expenses/expense-policy.md).",
            "Record any time off in lieu for weekend travel in Meadow.",
            "Rate the trip in Compass; the ratings help Travel negotiate better hotel rates.",
        ],
    ),
    ("p", "Questions about this guide: travel@larkspur.example."),
]

PENSION_AND_RETIREMENT = [
    ("h1", "Pensions and Retirement Savings"),
    (
        "p",
        "Owner: Reward and Benefits (benefits@larkspur.example). Effective: 1 January 2025. "
        "This document explains the retirement savings plans in each Larkspur office. A "
        "summary of all benefits is in benefits/benefits-overview.md. Nothing here is "
        "financial advice; free guidance is available through the pension clinics and the "
        "Employee Assistance Programme.",
    ),
    ("h2", "1. Summary"),
    (
        "table",
        [
            ["", "Leeds (UK)", "Lisbon (Portugal)", "Toronto (Canada)"],
            [
                "Plan",
                "Group personal pension with Northgate Life",
                "Tejo Futuro open pension fund, managed by Tejo Pensões",
                "Group RRSP and Deferred Profit Sharing Plan (DPSP) with Maple Ridge Financial",
            ],
            [
                "When you join",
                "Automatically on your start date",
                "Automatically on your start date",
                "First day of the month after 3 months' service",
            ],
            [
                "Your contribution",
                "4% by default; choose 4% to 15%",
                "Optional voluntary contributions",
                "1% to 5% to the RRSP (more possible, unmatched)",
            ],
            [
                "Larkspur contribution",
                "6% to 8% (see matching table)",
                "3% of base salary",
                "100% match of your contribution, up to 5%, paid into the DPSP",
            ],
            ["Vesting", "Immediate", "After 2 years' service", "After 2 years' service"],
            ["Pay used", "Base salary", "Base salary (14 payments)", "Base salary"],
        ],
    ),
    ("h2", "2. Leeds: group personal pension"),
    ("h3", "Joining"),
    (
        "p",
        "UK employees are enrolled in the Northgate Life group personal pension on their start "
        "date, which is earlier than the law requires. You may opt out within one month of "
        "being enrolled and receive a full refund of your own contributions; you can rejoin at "
        "any time in the November benefits window or after a life event.",
    ),
    ("h3", "Contribution matching"),
    (
        "p",
        "Contributions are made by salary sacrifice: your salary is reduced by your chosen "
        "contribution and Larkspur pays the same amount into your pension, so you save income "
        "tax and National Insurance. Larkspur adds more if you contribute more:",
    ),
    (
        "table",
        [
            ["Your contribution (% of base salary)", "Larkspur contribution", "Total going into your pension"],
            ["4% (default)", "6%", "10%"],
            ["5%", "7%", "12%"],
            ["6% or more (up to 15%)", "8%", "14% to 23%"],
        ],
    ),
    (
        "p",
        "You can change your contribution rate in Meadow once per month; changes made by the "
        "20th take effect in that month's payroll. If salary sacrifice would take your pay below "
        "the National Minimum Wage, you contribute from net pay instead and receive tax relief "
        "at source.",
    ),
    ("h3", "Investments"),
    (
        "p",
        "Unless you choose otherwise, contributions go into the Northgate Lifestyle Growth "
        "fund, which gradually moves into lower-risk investments in the 10 years before your "
        "selected retirement age. You can choose from 18 other funds, including an ethical "
        "fund and a Shariah-compliant fund, in the Northgate online portal.",
    ),
    ("h2", "3. Lisbon: Tejo Futuro pension fund"),
    (
        "ul",
        [
            "Larkspur pays 3% of your base salary into your individual account in the Tejo Futuro "
            "open pension fund, on each of the 14 salary payments a year (including the holiday and "
            "Christmas allowances).",
            "You may add voluntary contributions from your net salary through payroll. They may "
            "qualify for personal income tax (IRS) deductions within the legal limits.",
            "Larkspur's contributions vest after 2 years of service. If you leave before then, the "
            "company contributions return to Larkspur; your own voluntary contributions are always "
            "yours.",
            "Benefits are normally paid from the statutory retirement age, or earlier in the cases "
            "allowed by the fund rules (for example long-term unemployment or serious illness).",
            "Portuguese Social Security contributions (11% employee, 23.75% employer) continue as "
            "normal and are separate from this plan.",
        ],
    ),
    ("h2", "4. Toronto: Group RRSP and DPSP"),
    (
        "ul",
        [
            "You become eligible on the first day of the month after completing 3 months of service. "
            "Maple Ridge Financial sends you an enrolment pack, and you choose your contribution rate "
            "in Meadow.",
            "Your contributions of 1% to 5% of base salary go into your Group RRSP through payroll, "
            "with tax relief applied immediately.",
            "Larkspur matches 100% of your contribution up to 5% of base salary. The match is paid into "
            "the DPSP, not the RRSP.",
            "DPSP contributions vest after 2 years of plan membership. Your RRSP contributions are always yours.",
            "You may contribute more than 5% to the RRSP without a match, within your Canada Revenue "
            "Agency contribution room. Over-contribution is your responsibility.",
        ],
    ),
    ("h2", "5. Contributions during leave"),
    (
        "table",
        [
            ["Situation", "What happens to pension contributions"],
            ["Sick leave on full or half pay", "Contributions continue on your normal base salary"],
            [
                "Parental leave, full-pay period",
                "Contributions continue on full base salary (leave/parental-leave.html)",
            ],
            [
                "Parental leave, statutory or unpaid period",
                "UK: employer contributions continue on full salary as required by law; "
                "Lisbon and Toronto: contributions continue on the pay actually received",
            ],
            [
                "Unpaid leave or sabbatical",
                "Sabbatical (paid): normal. Unpaid leave: contributions stop (leave/other-leave.txt)",
            ],
        ],
    ),
    ("h2", "6. Leaving Larkspur and retiring"),
    (
        "ul",
        [
            "Your vested pension savings are always yours. You can leave them where they are or "
            "transfer them to a new employer's plan.",
            "Larkspur has no fixed retirement age. If you are thinking of retiring, talk to your "
            "manager and People Partner; we can usually offer a phased reduction of hours over up to "
            "12 months.",
            "Notice periods for resignation, including retirement, are in hr/probation-and-notice.docx.",
        ],
    ),
    ("h2", "7. Help and guidance"),
    (
        "ul",
        [
            "Pension clinics with an independent adviser are held in each office in May and October. "
            "Book a 30-minute slot through Sprout.",
            "Annual statements are issued each April (UK and Canada) and each February (Portugal).",
            "The Clearwater Employee Assistance Programme offers free financial guidance "
            "(benefits/benefits-overview.md).",
            "Contact benefits@larkspur.example for anything else.",
        ],
    ),
]

ON_CALL_POLICY = [
    ("h1", "Engineering On-Call Policy"),
    (
        "p",
        "Owner: VP Engineering (eng-oncall@larkspur.example). Applies to: engineers in teams "
        "that own Tier 1 or Tier 2 services (engineering/code-review-and-release.md) in Leeds, "
        "Lisbon and Toronto. Effective: 1 January 2025.",
    ),
    ("h2", "1. Purpose"),
    (
        "p",
        "Our clients depend on nightly data pipelines and dashboards that must be available "
        "when their working day starts. The on-call rota makes sure a trained engineer can "
        "respond to production incidents at any hour, while keeping the load fair and paying "
        "people properly for being available.",
    ),
    ("h2", "2. How the rota works"),
    (
        "ul",
        [
            "Rotas are managed in Klaxon, our paging and scheduling tool. Each rota has a primary and "
            "a secondary engineer.",
            "A rota week runs from Monday 10:00 to the following Monday 10:00, local time of the team. "
            "Handover happens in a 15-minute call at 10:00 on Mondays, using the handover template in "
            "Klaxon.",
            "Each rota needs at least 6 engineers, so nobody is primary more often than 1 week in 4 "
            "on average, and never for two consecutive weeks.",
            "Follow-the-sun: for rotas shared between offices, Lisbon and Leeds cover 07:00 to 19:00 "
            "UK time and Toronto covers 19:00 to 07:00 UK time wherever a team has enough people in "
            "both regions.",
            "Engineers at grades L2 to L5 take part. L1 engineers may shadow but are not placed on "
            "the rota. L6 and above act as the final escalation point only.",
        ],
    ),
    ("h2", "3. Joining the rota"),
    (
        "ul",
        [
            "Complete the on-call course in Sprout (about 3 hours).",
            "Shadow two full rota weeks with an experienced primary.",
            "You can join as secondary after 3 months of service, and as primary once you have "
            "passed probation (hr/probation-and-notice.docx), in both cases with your engineering "
            "manager's sign-off.",
            "On-call engineers receive a company smartphone with Klaxon installed "
            "(it-security/laptop-and-equipment.html).",
        ],
    ),
    ("h2", "4. Response times"),
    (
        "p",
        "Severities are defined in the incident process (engineering/incident-postmortems.docx). "
        "While on call you must be able to acknowledge a page and start working within these "
        "times:",
    ),
    (
        "table",
        [
            ["Severity", "Acknowledge page within", "Start work within", "Escalates if unacknowledged"],
            [
                "SEV1",
                "15 minutes",
                "30 minutes",
                "To secondary after 15 minutes, then to the engineering manager after a further 15 minutes",
            ],
            ["SEV2", "30 minutes", "1 hour", "To secondary after 30 minutes"],
            ["SEV3", "Next business day", "Next business day", "No out-of-hours paging"],
            ["SEV4", "Not paged", "Planned work", "None"],
        ],
    ),
    (
        "p",
        "In practice this means staying within 30 minutes of your laptop and a reliable "
        "internet connection, keeping your company phone charged and audible, and not being "
        "impaired by alcohol or medication.",
    ),
    ("h2", "5. On-call pay"),
    (
        "p",
        "You are paid a standby allowance for every day you are on the rota, whether or not "
        "you are paged, plus call-out pay for time spent working on incidents outside your "
        "normal hours. Primary and secondary receive the same standby rates.",
    ),
    (
        "table",
        [
            ["Payment", "Leeds", "Lisbon", "Toronto"],
            ["Weekday standby (per day, Monday to Friday)", "£35", "€40", "CA$60"],
            ["Weekend standby (per day, Saturday or Sunday)", "£90", "€100", "CA$160"],
            [
                "Public holiday standby (per day)",
                "£90 plus 1 day off in lieu",
                "€100 plus 1 day off in lieu",
                "CA$160 plus 1 day off in lieu",
            ],
            [
                "Call-out work outside normal hours",
                "1.5 x hourly rate, minimum 1 hour per call-out",
                "1.5 x hourly rate, minimum 1 hour per call-out",
                "1.5 x hourly rate, minimum 1 hour per call-out",
            ],
            ["Full standard week (5 weekdays + 2 weekend days)", "£355", "€400", "CA$620"],
        ],
    ),
    (
        "p",
        "The hourly rate is your annual base salary divided by 52 and by your contracted weekly "
        "hours (37.5 in Leeds and Toronto, 40 in Lisbon). On-call pay is not pensionable and is "
        "not affected by your grade.",
    ),
    ("h3", "Claiming on-call pay"),
    (
        "ul",
        [
            "Standby days are exported from Klaxon to Meadow automatically at the end of each rota week.",
            "Record call-out hours in your Meadow timesheet, with the incident reference, within 2 "
            "working days of the call-out.",
            "Everything approved by your engineering manager by the 20th of the month is paid in that "
            "month's payroll; later approvals are paid the following month.",
        ],
    ),
    ("h2", "6. Rest after call-outs"),
    (
        "ul",
        [
            "If you are paged and work between 00:00 and 06:00, start work no earlier than 12:00 the "
            "next day, without loss of pay.",
            "If you work more than 3 hours in total between 20:00 and 08:00, take the next working day "
            "off as paid rest. It does not come out of your annual leave.",
            "In Lisbon, the minimum daily rest of 11 consecutive hours required by Portuguese law "
            "always applies; your manager will rearrange the rota if needed.",
            "If you feel too tired to work safely, tell the secondary and your manager. Nobody is "
            "criticised for handing over.",
        ],
    ),
    ("h2", "7. Swaps, leave and sickness"),
    (
        "ul",
        [
            "Swap shifts with another qualified engineer in Klaxon at least 48 hours ahead and tell "
            "your engineering manager. Standby pay follows whoever is actually on call.",
            "You will not be scheduled during booked annual leave. Book leave in Meadow before the rota "
            "is published (rotas are published 6 weeks ahead).",
            "If you fall sick while on call, follow leave/sick-leave.md and also tell the secondary "
            "so the rota is covered. You keep the standby pay for days already completed.",
        ],
    ),
    ("h2", "8. Wellbeing"),
    (
        "p",
        "Engineering managers review on-call load monthly. A rota with more than 10 out-of-hours "
        "pages in a week for three weeks in a row triggers a reliability review, and the team "
        "must prioritise fixes over new features until the load drops. The Employee Assistance "
        "Programme is available 24 hours a day (benefits/benefits-overview.md).",
    ),
    ("p", "Questions: eng-oncall@larkspur.example."),
]

PROBATION_AND_NOTICE = [
    ("h1", "Probation and Notice Periods"),
    (
        "p",
        "Owner: People Team (people@larkspur.example). Applies to: all employees in Leeds, "
        "Lisbon and Toronto. Effective: 1 January 2025.",
    ),
    ("h2", "1. Probation"),
    (
        "p",
        "Every new employee starts with a probation period, during which you and Larkspur "
        "check that the role is a good fit. Probation lasts 6 months in Leeds and Toronto.",
    ),
    (
        "p",
        "In Lisbon, probation follows the Portuguese Labour Code: it is 180 days for roles at "
        "grade L2 and above, which Larkspur treats as roles of technical complexity, and 90 days "
        "for L1 roles.",
    ),
    ("h3", "Reviews during probation"),
    (
        "ul",
        [
            "Your manager sets probation objectives in Meadow during your first week "
            "(onboarding/onboarding-checklist.txt).",
            "A midpoint review is held at around 3 months (about 45 days for 90-day Lisbon probations).",
            "A final review is held before the end of the probation period. Your manager submits the "
            "outcome (pass, extend or end) in Meadow at least 2 weeks before the period ends.",
            "If no outcome is recorded, probation is treated as passed on its end date.",
        ],
    ),
    ("h3", "Extending probation"),
    (
        "p",
        "In Leeds and Toronto, probation can be extended once, by up to 3 months, if more time "
        "is needed to assess performance or if you were absent for a significant part of it. "
        "Portuguese law does not allow probation to be extended, so in Lisbon the period may be "
        "reduced by agreement but never lengthened.",
    ),
    ("h3", "What is different during probation"),
    (
        "ul",
        [
            "Company sick pay is limited to 2 weeks at full pay (leave/sick-leave.md).",
            "Engineers cannot be primary on the on-call rota until they pass probation, although "
            "they may join as secondary after 3 months (engineering/on-call-policy.pdf).",
            "Learning budget requests need your Director's approval (benefits/learning-and-development.md).",
            "All other benefits, including annual leave, apply from day one.",
        ],
    ),
    ("h2", "2. Notice periods"),
    (
        "p",
        "Notice periods are set by grade. The same notice applies whether you resign or "
        "Larkspur ends your employment, unless local law requires a longer period from the "
        "employer; in that case the longer legal period applies.",
    ),
    (
        "table",
        [
            ["Grade", "During probation", "After probation"],
            ["L1 and L2", "1 week", "1 month"],
            ["L3 and L4", "1 week", "2 months"],
            ["L5, L6 and L7", "2 weeks", "3 months"],
        ],
    ),
    ("h3", "Country rules"),
    (
        "table",
        [
            ["Office", "Rule"],
            [
                "Leeds",
                "The employer must give at least the statutory notice: 1 week per complete year of "
                "service, up to 12 weeks, if that is longer than the table.",
            ],
            [
                "Lisbon",
                "During probation, notice follows the Portuguese Labour Code (none in the first 60 days; "
                "7 days after 60 days; 15 days after 120 days). After probation, employees resigning "
                "give 30 days' notice with up to 2 years' service and 60 days with more than 2 years; "
                "L5 and above may agree up to 90 days in their contract.",
            ],
            [
                "Toronto",
                "The employer gives the greater of the table and the notice (or pay in lieu) required "
                "by Ontario's Employment Standards Act. Employees give the notice in the table.",
            ],
        ],
    ),
    ("h2", "3. Resigning"),
    (
        "ul",
        [
            "Resign in writing using the Resign workflow in Meadow, or by email to your line manager "
            "copied to people@larkspur.example. Notice starts the day after we receive it.",
            "Your manager will confirm your last working day in writing within 5 working days.",
            "A shorter notice period can be agreed with your manager and People Partner where the handover allows.",
        ],
    ),
    ("h2", "4. During your notice period"),
    (
        "ul",
        [
            "Larkspur may ask you to take accrued annual leave during notice, or pay it in your final "
            "salary (leave/annual-leave.md).",
            "Larkspur may place you on garden leave: you remain employed and paid but do not work or contact clients.",
            "Employees under notice are not eligible for the annual bonus (hr/performance-reviews.html).",
            "An exit interview is offered during your last 2 weeks; it is voluntary and confidential "
            "to the People Team.",
        ],
    ),
    ("h2", "5. Your last day and final pay"),
    (
        "ul",
        [
            "Return your laptop, security keys, phone, corporate card and building fob on or before "
            "your last day (it-security/laptop-and-equipment.html and expenses/corporate-card.txt).",
            "Submit any outstanding expense claims in Tally before your last day.",
            "Final pay is made on the normal payday of the month in which you leave, or of the "
            "following month if your last day is after the 20th. It includes pay for accrued but "
            "untaken leave, minus any leave taken in excess.",
            "Your P45 (UK), declaração de situação de desemprego if applicable (Portugal) or Record "
            "of Employment (Canada) is issued within 10 working days of your last payday.",
        ],
    ),
    ("h2", "6. References"),
    (
        "p",
        "Larkspur gives factual references confirming your job title and dates of employment. "
        "All reference requests must go to people@larkspur.example; managers should not give "
        "personal references on behalf of the company.",
    ),
]

MILEAGE_AND_HOME_OFFICE = [
    ("h1", "Mileage and Home-Office Allowances"),
    (
        "p",
        "Owner: Finance (expenses@larkspur.example). Applies to: all employees. Effective: "
        "1 January 2025. This document supplements the Expense Policy "
        "(expenses/expense-policy.md). All claims are made in Tally.",
    ),
    ("h2", "1. Business mileage in your own vehicle"),
    (
        "p",
        "You can claim mileage when you use your own car, motorcycle or bicycle for a business "
        "journey and it is cheaper or more practical than rail or a hire car. The rates cover "
        "fuel or charging, wear and tear and insurance, so you cannot also claim fuel.",
    ),
    (
        "table",
        [
            ["Vehicle", "Leeds (per mile)", "Lisbon (per km)", "Toronto (per km)"],
            [
                "Car or van (petrol, diesel, hybrid or electric)",
                "45p for the first 10,000 business miles in the tax year, then 25p",
                "€0.40",
                "CA$0.70 for the first 5,000 km in the calendar year, then CA$0.64",
            ],
            ["Motorcycle", "24p", "€0.20", "CA$0.35"],
            ["Bicycle", "20p", "€0.15", "CA$0.25"],
            ["Passenger supplement (per colleague carried on business)", "5p", "€0.05", "CA$0.05"],
        ],
    ),
    ("h3", "How to calculate the distance"),
    (
        "ul",
        [
            "Use the route calculator in Tally, entering the start and end postcodes or addresses and "
            "the business purpose.",
            "Your normal commute is never claimable. If you drive from home to a client site or "
            "another location instead of your office, claim the business distance minus your normal "
            "round-trip commute.",
            "Journeys that start from your office are claimable in full.",
        ],
    ),
    ("h3", "Other driving costs"),
    (
        "ul",
        [
            "Parking, tolls and congestion charges during business journeys are claimable with "
            "receipts. Parking and traffic fines are not (expenses/expense-policy.md).",
            "Your vehicle must be insured for business use. Larkspur does not reimburse the cost of "
            "adding business cover, and you must be able to show your insurance certificate on "
            "request.",
            "For round trips over 300 miles (480 km) in one day, use rail or fly instead, or stay "
            "overnight. Take a 15-minute break at least every 2 hours of driving.",
            "Hire cars are booked through Compass (travel/travel-policy.md); for hire cars you claim "
            "actual fuel costs with receipts, not mileage.",
        ],
    ),
    ("h2", "2. Home-office allowances"),
    (
        "p",
        "Larkspur is a hybrid company (hr/working-hours-and-flexible-working.md), so most "
        "people work from home for part of the week. Two allowances help with the cost.",
    ),
    (
        "table",
        [
            ["Allowance", "Leeds", "Lisbon", "Toronto", "How it is paid"],
            [
                "One-off home-office set-up allowance",
                "£300",
                "€350",
                "CA$500",
                "Claim in Tally with receipts, once every 5 years",
            ],
            ["Monthly home-working allowance", "£26", "€30", "CA$40", "Added to salary automatically each month"],
        ],
    ),
    ("h3", "Set-up allowance"),
    (
        "ul",
        [
            "Use it for a desk, a supportive chair, a desk lamp, a footrest or cable management.",
            "Claim within 6 months of joining, or of changing to a fully remote contract.",
            "IT equipment (monitor, dock, keyboard, mouse, headset) is supplied by IT and must not be "
            "bought with this allowance (it-security/laptop-and-equipment.html).",
            "Items bought with the allowance belong to you.",
        ],
    ),
    ("h3", "Monthly home-working allowance"),
    (
        "ul",
        [
            "Paid to every employee on a hybrid or fully remote contract, to help with heating, "
            "electricity and similar household costs of working from home.",
            "In the UK the £26 is paid free of tax and National Insurance under HMRC rules for "
            "homeworking expenses. In Lisbon the allowance is the compensation for additional "
            "telework costs under Portuguese law. In Toronto it is a taxable allowance.",
            "Broadband and personal mobile phone contracts are not reimbursed separately.",
            "The allowance is not paid during unpaid leave.",
        ],
    ),
    ("h3", "Safe home working"),
    (
        "p",
        "Complete the Home Workstation Self-Assessment in Sprout within 30 days of joining. If "
        "the assessment identifies a need for specialist equipment, IT and the People Team "
        "arrange it without using your allowances.",
    ),
    ("p", "Questions: expenses@larkspur.example."),
]

DATA_CLASSIFICATION = [
    ("h1", "Data Classification Standard"),
    (
        "p",
        "Owner: Head of Information Security with the Data Protection Officer "
        "(security@larkspur.example, dpo@larkspur.example). Applies to: all data created, "
        "received or stored by Larkspur, in any format. Effective: 1 January 2025.",
    ),
    ("h2", "1. Why we classify data"),
    (
        "p",
        "Larkspur holds data on behalf of clients as well as its own business and employee "
        "data. Classifying information tells everyone how carefully it must be handled. If you "
        "are unsure of a classification, choose the higher level and ask the data owner.",
    ),
    ("h2", "2. The four levels"),
    (
        "table",
        [
            ["Level", "Definition", "Examples"],
            [
                "Public",
                "Approved for release to anyone.",
                "Published blog posts, job adverts, marketing material, open-source code released by Larkspur.",
            ],
            [
                "Internal",
                "For Larkspur staff and contractors. Disclosure would cause little harm.",
                "This handbook, internal announcements, office guides, team plans.",
            ],
            [
                "Confidential",
                "Disclosure could harm Larkspur, a client or a person.",
                "All client data unless marked otherwise, contracts, pricing, source code, employee "
                "records, financial reports before publication.",
            ],
            [
                "Restricted",
                "Disclosure could cause serious harm or break the law or a contract.",
                "Special category personal data (health, ethnicity, biometrics), client data the client "
                "has marked restricted, credentials and security keys, payroll files, unreleased results "
                "of listed clients.",
            ],
        ],
    ),
    (
        "p",
        "Client data is Confidential by default from the moment it is received. The client's "
        "contract can raise it to Restricted but never lower it.",
    ),
    ("h2", "3. Handling rules"),
    (
        "table",
        [
            ["Rule", "Internal", "Confidential", "Restricted"],
            [
                "Where it may be stored",
                "Approved Larkspur tools",
                "Approved tools with access limited to the project or team",
                "Strongroom or a client-approved environment only; never on laptop local storage",
            ],
            [
                "Sharing outside Larkspur",
                "Only with a business need",
                "With a signed contract or NDA in place",
                "Only as the contract specifies, with the data owner's written approval",
            ],
            [
                "Email",
                "Allowed",
                "Allowed to named recipients; never to personal addresses",
                "Not as an attachment; share a Strongroom link with expiry of 7 days or less",
            ],
            ["Printing", "Allowed", "Secure follow-me printing only", "Not allowed"],
            ["Taking abroad on a laptop", "Allowed", "Allowed on an encrypted Larkspur laptop", "Not allowed"],
            [
                "Disposal",
                "Normal deletion",
                "Deletion from all copies; paper in confidential waste bins",
                "Certified deletion logged in Beacon; paper shredded on site",
            ],
        ],
    ),
    ("h2", "4. Labelling"),
    (
        "ul",
        [
            "Documents and spreadsheets created in Larkspur tools carry a classification label; the "
            "default label is Internal.",
            "Change the label when you add more sensitive content. Confidential and Restricted labels "
            "add a header and a watermark automatically.",
            "Datasets in the data platform are labelled in the data catalogue by the data owner when "
            "they are registered.",
        ],
    ),
    ("h2", "5. Roles"),
    (
        "ul",
        [
            "Data owner: the person accountable for a dataset, usually the Director of the client "
            "account or the head of the function. They approve access and classification.",
            "Data custodian: the team running the system where the data lives (often Platform or IT).",
            "Everyone: handles data according to its label and reports mistakes within 1 hour "
            "(it-security/incident-reporting.txt).",
        ],
    ),
    ("h2", "6. Retention"),
    (
        "table",
        [
            ["Type of data", "Retention period"],
            [
                "Client project data",
                "Deleted within 90 days after the end of the contract, unless the contract says otherwise",
            ],
            ["Employee records", "6 years after employment ends"],
            ["Unsuccessful candidates' data", "12 months after the recruitment decision"],
            ["Expense claims and receipts", "7 years"],
            ["Security and access logs", "13 months"],
        ],
    ),
    ("h2", "7. Access reviews"),
    (
        "p",
        "Data owners review access to Confidential data every 6 months and to Restricted data "
        "every 90 days. Access for people who have left a project is removed within 5 working "
        "days of them leaving it.",
    ),
    (
        "p",
        "Breaking this standard is handled under the Grievance and Disciplinary Procedure "
        "(hr/grievance-and-disciplinary.txt); deliberate or reckless disclosure of Confidential "
        "or Restricted data is gross misconduct.",
    ),
]

INCIDENT_POSTMORTEMS = [
    ("h1", "Production Incidents and Postmortems"),
    (
        "p",
        "Owner: VP Engineering with the Platform team (platform@larkspur.example). Applies to: "
        "all production incidents affecting Larkspur products and client data services. "
        "Security incidents (lost devices, phishing, data exposure) must also be reported to "
        "Security under it-security/incident-reporting.txt. Effective: 1 January 2025.",
    ),
    ("h2", "1. Severity levels"),
    (
        "table",
        [
            ["Severity", "Definition", "Acknowledge", "Update cadence", "Postmortem"],
            [
                "SEV1",
                "A Tier 1 service is down, or client data is at risk, or several clients are affected",
                "15 minutes, 24x7",
                "Every 30 minutes",
                "Required within 5 working days",
            ],
            [
                "SEV2",
                "A Tier 1 service is degraded, or one client's deliverable will be late",
                "30 minutes, 24x7",
                "Every 60 minutes",
                "Required within 5 working days",
            ],
            [
                "SEV3",
                "A Tier 2 service is down or any service is degraded with a workaround",
                "Next business day",
                "Daily",
                "Optional, at the engineering manager's discretion",
            ],
            ["SEV4", "Minor or cosmetic issue", "Not paged", "None", "Not needed"],
        ],
    ),
    (
        "p",
        "Anyone can declare an incident by typing /incident in the chat tool, which creates an "
        "incident channel named inc-YYYYMMDD-short-name and pages the on-call engineer through "
        "Klaxon. If you are unsure of the severity, choose the higher one; it can be lowered "
        "later.",
    ),
    ("h2", "2. Roles during an incident"),
    (
        "table",
        [
            ["Role", "Responsibilities"],
            [
                "Incident commander (IC)",
                "Usually the primary on-call engineer at first. Coordinates the response, "
                "decides on mitigation and approves emergency changes, including during a change freeze.",
            ],
            [
                "Communications lead",
                "For SEV1 and SEV2: posts updates on the status page and in the incident "
                "channel at the set cadence, and briefs the Client Delivery lead.",
            ],
            ["Scribe", "Keeps a timeline of events and decisions in the incident document."],
            ["Subject-matter experts", "Engineers pulled in by the IC to investigate and fix."],
        ],
    ),
    (
        "ul",
        [
            "For SEV1 incidents, the Client Delivery lead tells affected clients within 1 hour of declaration.",
            "The IC role can be handed over explicitly in the channel; the outgoing IC stays until the "
            "new IC confirms.",
            "Mitigate first, then investigate: rolling back is almost always the right first move "
            "(engineering/code-review-and-release.md).",
        ],
    ),
    ("h2", "3. Writing the postmortem"),
    (
        "p",
        "Postmortems are blameless. They describe what the system and the process allowed to "
        "happen, not who made a mistake. Names appear only in the timeline, never as a cause. "
        "The postmortem is written in the template in the engineering wiki, owned by the IC, and "
        "published within 5 working days of the incident being resolved.",
    ),
    ("h3", "Template sections"),
    (
        "ul",
        [
            "Summary: two or three sentences a client could understand.",
            "Impact: which clients and services, for how long, and what data (if any) was affected.",
            "Timeline: from first signal to resolution, in UTC.",
            "Detection: how we found out, and how we could have found out sooner.",
            "Root causes and contributing factors.",
            "What went well, and where we got lucky.",
            "Action items: each with an owner, a due date and a ticket.",
        ],
    ),
    ("h3", "Action items"),
    (
        "table",
        [
            ["Severity", "Action items due within"],
            ["SEV1", "30 days"],
            ["SEV2", "60 days"],
            ["SEV3", "Team's normal planning cycle"],
        ],
    ),
    (
        "p",
        "Action items are tagged postmortem in the tracker. Overdue SEV1 action items are "
        "reviewed by the VP Engineering every week until they are closed.",
    ),
    ("h2", "4. Incident review meeting"),
    (
        "p",
        "Every Wednesday at 15:00 UK time (16:00 Lisbon, 10:00 Toronto), the Platform team "
        "hosts a 45-minute incident review, open to everyone in the company. Each SEV1 and "
        "SEV2 postmortem from the past week is presented by its IC. The recording and slides "
        "are posted in Sprout.",
    ),
    ("h2", "5. Metrics"),
    (
        "p",
        "The Platform team reports monthly on the number of incidents by severity, mean time to "
        "acknowledge, mean time to resolve, and the percentage of action items closed on time. "
        "The 2025 targets are: SEV1 mean time to resolve under 2 hours, and at least 90% of "
        "action items closed by their due date.",
    ),
    ("h2", "6. After hours"),
    (
        "p",
        "Incident work outside normal hours is paid and followed by rest time as set out in "
        "the Engineering On-Call Policy (engineering/on-call-policy.pdf).",
    ),
]

# Output path (relative to data/corpus) -> (title, blocks)
PDF_DOCS = {
    "leave/public-holidays-2025.pdf": ("Public Holidays and Larkspur Days 2025", PUBLIC_HOLIDAYS_2025),
    "travel/travel-booking-guide.pdf": ("Travel Booking Guide", TRAVEL_BOOKING_GUIDE),
    "benefits/pension-and-retirement.pdf": ("Pensions and Retirement Savings", PENSION_AND_RETIREMENT),
    "engineering/on-call-policy.pdf": ("Engineering On-Call Policy", ON_CALL_POLICY),
}
DOCX_DOCS = {
    "hr/probation-and-notice.docx": ("Probation and Notice Periods", PROBATION_AND_NOTICE),
    "expenses/mileage-and-home-office.docx": ("Mileage and Home-Office Allowances", MILEAGE_AND_HOME_OFFICE),
    "it-security/data-classification.docx": ("Data Classification Standard", DATA_CLASSIFICATION),
    "engineering/incident-postmortems.docx": ("Production Incidents and Postmortems", INCIDENT_POSTMORTEMS),
}


# ---------------------------------------------------------------------------
# PDF rendering (reportlab)
# ---------------------------------------------------------------------------


def write_pdf(path: Path, title: str, blocks: list) -> None:
    from reportlab import rl_config
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    rl_config.invariant = 1  # fixed creation date and document ID -> reproducible bytes

    styles = getSampleStyleSheet()
    body = ParagraphStyle("Body", parent=styles["BodyText"], fontSize=10, leading=13.5, spaceAfter=6, alignment=TA_LEFT)
    cell = ParagraphStyle("Cell", parent=body, fontSize=9, leading=11.5, spaceAfter=0)
    head_cell = ParagraphStyle("HeadCell", parent=cell, fontName="Helvetica-Bold")
    h1 = ParagraphStyle("H1", parent=styles["Heading1"], fontSize=18, leading=22, spaceAfter=10)
    h2 = ParagraphStyle("H2", parent=styles["Heading2"], fontSize=13, leading=16, spaceBefore=10)
    h3 = ParagraphStyle("H3", parent=styles["Heading3"], fontSize=11, leading=14, spaceBefore=6)

    def para(text: str, style) -> Paragraph:
        return Paragraph(escape(text), style)

    frame_width = A4[0] - 40 * mm
    story = []
    for kind, content in blocks:
        if kind == "h1":
            story.append(para(content, h1))
        elif kind == "h2":
            story.append(para(content, h2))
        elif kind == "h3":
            story.append(para(content, h3))
        elif kind == "p":
            story.append(para(content, body))
        elif kind in ("ul", "ol"):
            items = [ListItem(para(item, body), leftIndent=12) for item in content]
            story.append(
                ListFlowable(
                    items, bulletType="bullet" if kind == "ul" else "1", start="•" if kind == "ul" else 1, leftIndent=14
                )
            )
        elif kind == "table":
            header, *rows = content
            data = [[para(c, head_cell) for c in header]] + [[para(c, cell) for c in r] for r in rows]
            col_width = frame_width / len(header)
            table = Table(data, colWidths=[col_width] * len(header), repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#8a8a8a")),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4dcf0")),  # larkspur lilac
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("TOPPADDING", (0, 0), (-1, -1), 3),
                        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                    ]
                )
            )
            story.extend([table, Spacer(1, 8)])
        else:
            raise ValueError(f"unknown block type {kind!r}")

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(20 * mm, 12 * mm, f"Larkspur Analytics Ltd - {title} - Internal")
        canvas.drawRightString(A4[0] - 20 * mm, 12 * mm, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=title,
        author=AUTHOR,
        subject="Larkspur Analytics employee handbook",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=22 * mm,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


# ---------------------------------------------------------------------------
# DOCX rendering (python-docx)
# ---------------------------------------------------------------------------


def write_docx(path: Path, title: str, blocks: list) -> None:
    import docx
    from docx.shared import Pt

    document = docx.Document()
    props = document.core_properties
    props.title = title
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.subject = "Larkspur Analytics employee handbook"
    props.created = FIXED_DATE
    props.modified = FIXED_DATE
    props.revision = 1

    document.styles["Normal"].font.size = Pt(10.5)

    for kind, content in blocks:
        if kind == "h1":
            document.add_heading(content, level=1)  # style "Heading 1"
        elif kind == "h2":
            document.add_heading(content, level=2)  # style "Heading 2"
        elif kind == "h3":
            document.add_heading(content, level=3)  # style "Heading 3"
        elif kind == "p":
            document.add_paragraph(content)
        elif kind in ("ul", "ol"):
            style = "List Bullet" if kind == "ul" else "List Number"
            for item in content:
                document.add_paragraph(item, style=style)
        elif kind == "table":
            header, *rows = content
            table = document.add_table(rows=1, cols=len(header), style="Table Grid")
            for cell, text in zip(table.rows[0].cells, header, strict=True):
                cell.text = ""
                cell.paragraphs[0].add_run(text).bold = True
            for row in rows:
                for cell, text in zip(table.add_row().cells, row, strict=True):
                    cell.text = text
            document.add_paragraph()  # breathing space after the table
        else:
            raise ValueError(f"unknown block type {kind!r}")

    # python-docx stamps every zip member with the current time; rewrite the
    # package with a fixed timestamp so that regenerating gives identical bytes.
    buffer = io.BytesIO()
    document.save(buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_DATE.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, src.read(item.filename))


# ---------------------------------------------------------------------------


def main() -> None:
    for rel, (title, blocks) in PDF_DOCS.items():
        out = CORPUS / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        write_pdf(out, title, blocks)
        print(f"wrote {out.relative_to(CORPUS.parent)}")
    for rel, (title, blocks) in DOCX_DOCS.items():
        out = CORPUS / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        write_docx(out, title, blocks)
        print(f"wrote {out.relative_to(CORPUS.parent)}")


if __name__ == "__main__":
    main()
