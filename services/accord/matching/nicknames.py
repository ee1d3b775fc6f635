"""Given names that stand for the same person: nicknames, diminutives and spellings.

Kept as data, one group a line: a formal name first, then the names people use for it.
A name may sit in several groups (Alex is Alexander or Alexandra). Two given names are
"alias" level when they share a group. Add a line to widen the table; nothing else
needs to change. Accents are ignored (names are folded before lookup).
"""

from __future__ import annotations

from typing import Final

NICKNAME_GROUPS: Final[str] = """
alexander alex alec alick sandy sanny sandie xander alasdair alastair alistair alister
alexandra alex sandra sandy lexie
andrew andy drew dand
angus gus
archibald archie baldie
catherine katherine kathryn katharine cathy kathy kate katie cath kath cathie kay catriona
christina christine chris chrissie kirsty kirstie kirsteen
christopher chris kit topher
charles charlie chas chuck
daniel dan danny
david dave davie davy
donald don donnie
douglas doug dougie
duncan dunc
edward ed eddie ted ned
elizabeth elisabeth liz lizzie beth betty bess bessie betsy elspeth elsie eliza lisa libby
eleanor ellen nell nellie ellie elinor
euan ewan ewen eoin owen
francis frank frankie
frances fran frankie fanny
george dod geordie
gordon gordie
grace gracie
hamish james
helen helena nell nellie
hugh hughie shug
iain ian
isabel isobel isabella ishbel iseabail bella izzy isa ella
james jim jimmy jamie jas hamish seumas
janet jessie jenny jan janette
jean jeanie jeannie
jennifer jenny jen
john jack johnny jock ian iain sean seán shaun
joseph joe joey
kenneth ken kenny
lachlan lachie lachy
margaret maggie meg peggy maisie madge marjorie margo mags greta rita may
mary maria marie molly polly mae may mhairi moira maureen
matthew matt
michael mike mick mickey
mohammed muhammad mohammad mohamed mo
murdo murdoch
norman norrie
patricia pat patsy trish tricia
patrick pat paddy padraig pádraig
peter pete
rebecca becky becca
richard rick ricky dick dickie rab
robert rob robbie bob bobby bert rab rabbie
ronald ron ronnie
ruaridh ruairidh ruairi rory roderick
samuel sam sammy
sarah sara sally
stephen steven steve stevie
stuart stewart stu
susan sue susie suzanne
thomas tom tommy tam
victoria vicky tori
william bill billy will willie wull liam
walter wattie wat
"""


DISTINCT_PAIRS: Final[str] = """
alexander alexandra
christian christina
daniel danielle
francis frances
george georgina
john joan
paul paula
robert roberta
louis louise
eric erica
james jane
andrew andrea
margaret marjorie
"""
"""Names close in spelling that belong to different people (often a brother and a sister).

A pair on one line is never taken for a typo of each other, however similar the
spelling: twins named Alexander and Alexandra must not be merged. A listed pair is
different even where a nickname group above holds both (Marjorie grew out of Margaret,
but a Marjorie and a Margaret at one address are two people).
"""
