#!/usr/bin/env python3
"""Writes tests/fixtures/screening/cases.csv: labelled name pairs for the matcher, one class per
rule of issue 12, written for this project from public knowledge (company names and legal forms
as their registers and websites give them, sanctioned persons as governments publish them).
Nothing here is taken from an evaluation file.

    python3 scripts/generate_screening_cases.py

The pairs are written out by hand below, or composed from hand-written real names by a fixed,
documented transformation (a legal form written out, a letter dropped); the script is
deterministic, so the file only changes when this script does.
"""

import csv
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "screening", "cases.csv")

rows = []


def add(cls, schema, a, b, match, source):
    rows.append((a, b, "true" if match else "false", schema, cls, source))


# 1. Legal forms written out, in the language of the register, against the abbreviation.
LEGAL = [
    # (name, abbreviated form, written-out form, jurisdiction)
    ("Rheinmetall", "AG", "Aktiengesellschaft", "DE"),
    ("Siemens", "AG", "Aktiengesellschaft", "DE"),
    ("Hensoldt", "AG", "Aktiengesellschaft", "DE"),
    ("Infineon Technologies", "AG", "Aktiengesellschaft", "DE"),
    ("MTU Aero Engines", "AG", "Aktiengesellschaft", "DE"),
    ("Jenoptik", "AG", "Aktiengesellschaft", "DE"),
    ("Carl Zeiss", "AG", "Aktiengesellschaft", "DE"),
    ("Diehl Defence", "GmbH", "Gesellschaft mit beschränkter Haftung", "DE"),
    ("Heckler & Koch", "GmbH", "Gesellschaft mit beschränkter Haftung", "DE"),
    ("Krauss-Maffei Wegmann", "GmbH", "Gesellschaft mit beschränkter Haftung", "DE"),
    ("Trumpf Laser", "GmbH", "Gesellschaft mit beschränkter Haftung", "DE"),
    ("Rohde & Schwarz", "GmbH", "Gesellschaft mit beschränkter Haftung", "DE"),
    ("Glock", "GmbH", "Gesellschaft mit beschränkter Haftung", "AT"),
    ("Steyr Arms", "GmbH", "Gesellschaft mit beschränkter Haftung", "AT"),
    ("Leonardo", "S.p.A.", "Società per Azioni", "IT"),
    ("Fincantieri", "S.p.A.", "Società per Azioni", "IT"),
    ("Fabbrica d'Armi Pietro Beretta", "S.p.A.", "Società per Azioni", "IT"),
    ("Elettronica", "S.p.A.", "Società per Azioni", "IT"),
    ("Thales", "SA", "Société Anonyme", "FR"),
    ("Safran", "SA", "Société Anonyme", "FR"),
    ("Dassault Aviation", "SA", "Société Anonyme", "FR"),
    ("Naval Group", "SA", "Société Anonyme", "FR"),
    ("Arquus", "SAS", "Société par actions simplifiée", "FR"),
    ("Indra Sistemas", "S.A.", "Sociedad Anónima", "ES"),
    ("Navantia", "S.A.", "Sociedad Anónima", "ES"),
    ("Instalaza", "S.A.", "Sociedad Anónima", "ES"),
    ("Embraer", "S.A.", "Sociedade Anônima", "BR"),
    ("Avibras Indústria Aeroespacial", "S.A.", "Sociedade Anônima", "BR"),
    ("Damen Shipyards", "B.V.", "Besloten Vennootschap", "NL"),
    ("Fokker Technologies", "B.V.", "Besloten Vennootschap", "NL"),
    ("ASML Holding", "N.V.", "Naamloze Vennootschap", "NL"),
    ("Koninklijke Philips", "N.V.", "Naamloze Vennootschap", "NL"),
    ("Saab", "AB", "Aktiebolag", "SE"),
    ("Telefonaktiebolaget LM Ericsson", "AB", "Aktiebolag", "SE"),
    ("Bofors", "AB", "Aktiebolag", "SE"),
    ("Kongsberg Gruppen", "ASA", "Allmennaksjeselskap", "NO"),
    ("Nammo Raufoss", "AS", "Aksjeselskap", "NO"),
    ("Terma", "A/S", "Aktieselskab", "DK"),
    ("Patria", "Oyj", "Julkinen osakeyhtiö", "FI"),
    ("Aselsan Elektronik Sanayi ve Ticaret", "A.Ş.", "Anonim Şirketi", "TR"),
    ("Roketsan Roket Sanayii ve Ticaret", "A.Ş.", "Anonim Şirketi", "TR"),
    ("Havelsan Hava Elektronik Sanayi ve Ticaret", "A.Ş.", "Anonim Şirketi", "TR"),
    ("Baykar Makina Sanayi ve Ticaret", "A.Ş.", "Anonim Şirketi", "TR"),
    ("Kale Kalıp Makina", "Ltd. Şti.", "Limited Şirketi", "TR"),
    ("Romarm", "S.A.", "Societate pe Acțiuni", "RO"),
    ("Aerostar", "S.A.", "Societate pe Acțiuni", "RO"),
    ("Elmet International", "S.R.L.", "Societatea cu Răspundere Limitată", "RO"),
    ("Bumar Łabędy", "Sp. z o.o.", "Spółka z ograniczoną odpowiedzialnością", "PL"),
    ("WB Electronics", "S.A.", "Spółka Akcyjna", "PL"),
    ("Huta Stalowa Wola", "S.A.", "Spółka Akcyjna", "PL"),
    ("Jelcz", "Sp. z o.o.", "Spółka z ograniczoną odpowiedzialnością", "PL"),
    ("Česká zbrojovka", "a.s.", "akciová společnost", "CZ"),
    ("Excalibur Army", "s.r.o.", "společnost s ručením omezeným", "CZ"),
    ("Rosoboronexport", "AO", "Aktsionernoye Obshchestvo", "RU"),
    ("Tupolev", "PAO", "Publichnoye Aktsionernoye Obshchestvo", "RU"),
    ("Aeroflot", "PAO", "Publichnoye Aktsionernoye Obshchestvo", "RU"),
    ("Kalashnikov Concern", "AO", "Aktsionernoye Obshchestvo", "RU"),
    ("Mikron", "PAO", "Publichnoye Aktsionernoye Obshchestvo", "RU"),
    ("Angstrem", "AO", "Aktsionernoye Obshchestvo", "RU"),
    ("Elbrus Technologies", "OOO", "Obshchestvo s Ogranichennoy Otvetstvennostyu", "RU"),
    ("Baikal Electronics", "AO", "Aktsionernoye Obshchestvo", "RU"),
    ("Uralvagonzavod", "AO", "Aktsionernoye Obshchestvo", "RU"),
    ("Motor Sich", "AT", "Aktsionerne Tovarystvo", "UA"),
    ("Hellenic Aerospace Industry", "S.A.", "Anonymi Etaireia", "GR"),
    ("Ardmore Shipping", "Ltd", "Limited", "IE"),
    ("BAE Systems", "plc", "Public Limited Company", "GB"),
    ("Rolls-Royce Holdings", "plc", "Public Limited Company", "GB"),
    ("Chemring Group", "PLC", "Public Limited Company", "GB"),
    ("Lockheed Martin", "Corp.", "Corporation", "US"),
    ("Raytheon Technologies", "Corp.", "Corporation", "US"),
    ("General Dynamics", "Corp.", "Corporation", "US"),
    ("Textron", "Inc.", "Incorporated", "US"),
    ("L3Harris Technologies", "Inc.", "Incorporated", "US"),
    ("Huawei Technologies", "Co., Ltd.", "Company Limited", "CN"),
    ("Zhejiang Dahua Technology", "Co., Ltd.", "Company Limited", "CN"),
    ("Iflytek", "Co., Ltd.", "Company Limited", "CN"),
    ("Hanwha Aerospace", "Co., Ltd.", "Company Limited", "KR"),
    ("LIG Nex1", "Co., Ltd.", "Company Limited", "KR"),
    ("Mitsubishi Heavy Industries", "Ltd.", "Kabushiki Kaisha", "JP"),
    ("Bharat Electronics", "Ltd", "Limited", "IN"),
    ("Pindad", "PT", "Perseroan Terbatas", "ID"),
    ("Pakistan Ordnance Factories", "Pvt Ltd", "Private Limited", "PK"),
    ("Paramount Group", "(Pty) Ltd", "Proprietary Limited", "ZA"),
    ("Denel SOC", "Ltd", "Limited", "ZA"),
]
for name, short, long_, cc in LEGAL:
    src = f"public knowledge: {cc} company and its register's legal form"
    if short in ("PT", "AO", "PAO", "OOO"):
        add("legal_form", "Company", f"{short} {name}", f"{long_} {name}", True, src)
        add("legal_form", "Company", f"{short} {name}", f"{name} {long_}", True, src)
    else:
        add("legal_form", "Company", f"{name} {short}", f"{name} {long_}", True, src)
        add("legal_form", "Company", f"{name.upper()} {short.upper()}", f"{name} {long_}", True, src)
# Legal forms in their own script.
for a, b in [
    ("Общество с ограниченной ответственностью «Элбрус Технологии»", "OOO Elbrus Tekhnologii"),
    ("Акционерное общество «Рособоронэкспорт»", "Rosoboronexport JSC"),
    ("Публичное акционерное общество «Аэрофлот»", "PJSC Aeroflot"),
    ("Публичное акционерное общество «Туполев»", "Tupolev PAO"),
    ("Акционерное общество «Концерн Калашников»", "Kalashnikov Concern AO"),
    ("Публичное акционерное общество «Микрон»", "PAO Mikron"),
    ("Акционерное общество «Ангстрем»", "AO Angstrem"),
    ("Акционерное общество «Уралвагонзавод»", "JSC Uralvagonzavod"),
    ("ООО «Ромашка»", "Romashka LLC"),
    ("Ελληνική Αεροπορική Βιομηχανία Α.Ε.", "Elliniki Aeroporiki Viomichania S.A."),
    ("Μυτιληναίος Α.Ε.", "Mytilineos S.A."),
    ("华为技术有限公司", "Huawei Technologies Co., Ltd."),
    ("浙江大华技术股份有限公司", "Zhejiang Dahua Technology Co., Ltd."),
]:
    add("legal_form", "Company", a, b, True, "public knowledge: company name in its own script")
# Same legal form, different companies: the form is no evidence.
for a, b in [
    ("Rheinmetall AG", "Hensoldt AG"),
    ("Rheinmetall Aktiengesellschaft", "Siemens AG"),
    ("Diehl Defence GmbH", "Diehl Aviation GmbH"),
    ("Thales SA", "Safran SA"),
    ("Aselsan A.Ş.", "Roketsan A.Ş."),
    ("Havelsan Hava Elektronik Sanayi ve Ticaret A.Ş.", "Aselsan Elektronik Sanayi ve Ticaret A.Ş."),
    ("AO Angstrem", "AO Mikron"),
    ("Tupolev PAO", "Aeroflot PAO"),
    ("Leonardo S.p.A.", "Fincantieri S.p.A."),
    ("Saab AB", "Bofors AB"),
    ("WB Electronics S.A.", "Huta Stalowa Wola S.A."),
    ("Bharat Electronics Limited", "Bharat Dynamics Limited"),
    ("BAE Systems plc", "Chemring Group plc"),
    ("Huawei Technologies Co., Ltd.", "Huawei Marine Networks Co., Ltd."),
]:
    add("legal_form", "Company", a, b, False, "public knowledge: two different companies with one legal form")

# 2. Joined, split and hyphenated words; legal forms glued to the name.
for a, b, match in [
    ("Huawei Technologies", "Hua Wei Technologies", True),
    ("Huawei Technologies", "HuaWei Technologies", True),
    ("Hikvision Digital Technology", "Hik Vision Digital Technology", True),
    ("Hikvision Digital Technology", "HikVision Digital Technology", True),
    ("Sinotech Engineering Consultants", "Sino-Tech Engineering Consultants", True),
    ("SINOTECH Engineering Consultants", "Sino Tech Engineering Consultants", True),
    ("PetroChina Company Limited", "Petro China Co Ltd", True),
    ("Sinopec", "Sino-Pec", True),
    ("CloudWalk Technology", "Cloud Walk Technology", True),
    ("SenseTime Group", "Sensetime Group", True),
    ("Sense Time Group", "SENSETIME GROUP", True),
    ("Rosoboronexport", "Rosoboron Export", True),
    ("Uralvagonzavod", "Ural Vagon Zavod", True),
    ("Rheinmetall AG", "RheinmetallAG", True),
    ("Siemens AG", "SiemensAG", True),
    ("Elbrus Technologies LLC", "ElbrusTechnologies LLC", True),
    ("Almaz-Antey", "Almaz Antey", True),
    ("Almaz-Antey", "AlmazAntey", True),
    ("Krauss-Maffei Wegmann", "Krauss Maffei Wegmann", True),
    ("Krauss-Maffei Wegmann", "KraussMaffei Wegmann", True),
    ("Rolls-Royce", "Rolls Royce", True),
    ("Hewlett-Packard", "Hewlett Packard", True),
    ("Tianjin Phytium", "Tian Jin Phytium", True),
    ("Shanghai Micro Electronics Equipment", "Shanghai MicroElectronics Equipment", True),
    ("Beijing Zhongguancun", "Beijing Zhong Guan Cun", True),
    ("Hua Wei Technologies", "Hua Xin Technologies", False),
    ("Sino-Tech Engineering", "Sino-Steel Engineering", False),
    ("Petro China", "Petro Vietnam", False),
    ("Cloud Walk Technology", "Cloud Mind Technology", False),
    ("Ural Vagon Zavod", "Ural Motor Zavod", False),
    ("Hik Vision", "Hik Micro", False),
]:
    add("joined_split", "Company", a, b, match, "public knowledge: company names written joined, split or hyphenated")

# 3. Symbols and initials.
for a, b, match in [
    ("Smith & Wesson", "Smith and Wesson", True),
    ("Smith & Wesson", "Smith + Wesson", True),
    ("Heckler & Koch", "Heckler und Koch", True),
    ("Rohde & Schwarz", "Rohde und Schwarz", True),
    ("Procter & Gamble", "Procter and Gamble", True),
    ("Marks & Spencer", "Marks and Spencer", True),
    ("Johnson & Johnson", "Johnson and Johnson", True),
    ("Dolce & Gabbana", "Dolce e Gabbana", True),
    ("BAE Systems (UK)", "BAE Systems (United Kingdom)", True),
    ("BAE Systems U.K.", "BAE Systems UK", True),
    ("Thales UK", "Thales United Kingdom", True),
    ("Huawei Technologies USA", "Huawei Technologies United States", True),
    ("Huawei Technologies (U.S.A.)", "Huawei Technologies (United States of America)", True),
    ("Emirates Defence Industries (UAE)", "Emirates Defence Industries (United Arab Emirates)", True),
    ("Embassy of the PRC", "Embassy of the People's Republic of China", True),
    ("Ministry of Defence of the PRC", "Ministry of Defence of the People's Republic of China", True),
    ("Huawei Intl", "Huawei International", True),
    ("Semiconductor Mfg Intl Corp", "Semiconductor Manufacturing International Corporation", True),
    ("China Electronics Tech Group", "China Electronics Technology Group", True),
    ("Harbin Inst of Tech", "Harbin Institute of Technology", True),
    ("Beijing Univ of Aeronautics & Astronautics", "Beijing University of Aeronautics and Astronautics", True),
    ("Natl Univ of Defense Tech", "National University of Defense Technology", True),
    ("The Boeing Company", "Boeing Co", True),
    ("The Institute of Physics", "Institute of Physics", True),
    ("ABC Trading", "Alpha Beta Charlie Trading", False),
    ("CSC Technology", "China Shipbuilding Corporation Technology", False),
    ("HK Electronics", "Hikvision Electronics", False),
    ("UK Electronics", "Ukraine Electronics", False),
    ("PRC Trading", "Peoples Revolutionary Council Trading", False),
    ("IRGC Cooperative Foundation", "Iran Gas Company Cooperative Foundation", False),
]:
    add("symbols_initials", "Company", a, b, match, "public knowledge: symbols, abbreviations and generic initialisms")

# 4. Numbers: digits, number words, ordinals in several languages, roman numerals.
for a, b, match in [
    ("54th Research Institute of CETC", "Fifty-Fourth Research Institute of CETC", True),
    ("14th Research Institute of CETC", "Fourteenth Research Institute of CETC", True),
    ("38th Research Institute of CETC", "Thirty-Eighth Research Institute of CETC", True),
    ("Forty-Four Machinery Plant", "44 Machinery Plant", True),
    ("3rd Machinery Plant", "Third Machinery Plant", True),
    ("III Machinery Plant", "3rd Machinery Plant", True),
    ("Plant No. 2", "Plant Number Two", True),
    ("Plant No 2", "Plant2", True),
    ("Zavod No. 9", "Zavod Nine", True),
    ("First Automobile Works", "1st Automobile Works", True),
    ("Second Artillery Engineering University", "2nd Artillery Engineering University", True),
    ("Erste Maschinenfabrik Kassel", "1 Maschinenfabrik Kassel", True),
    ("Zweite Maschinenfabrik Kassel", "2. Maschinenfabrik Kassel", True),
    ("Premier Régiment Étranger", "1er Régiment Étranger", True),
    ("Vtoroy Moskovskiy Priborostroitelnyy Zavod", "2 Moskovskiy Priborostroitelnyy Zavod", True),
    ("Pervyy Kanal", "1 Kanal", True),
    ("Louis XIV Trading", "Louis 14 Trading", True),
    ("Apollo VII Holdings", "Apollo 7 Holdings", True),
    ("Seven Seas Shipping", "7 Seas Shipping", True),
    ("Twenty First Century Fox", "21st Century Fox", True),
    ("Ninety-Nine Trading", "99 Trading", True),
    ("MiG-29 Service Center", "MiG29 Service Center", True),
    ("SMU-5", "SMU 5", True),
    ("706th Research Institute", "707th Research Institute", False),
    ("First Machinery Plant", "Second Machinery Plant", False),
    ("14th Research Institute of CETC", "41st Research Institute of CETC", False),
    ("Plant No. 2", "Plant No. 3", False),
    ("III Machinery Plant", "II Machinery Plant", False),
    ("Seven Seas Shipping", "Six Seas Shipping", False),
    ("Zavod No. 9", "Zavod No. 19", False),
]:
    add("numbers", "Organization", a, b, match, "public knowledge: numbered institutes and plants")

# 5. Typos in the distinctive word: one substituted, dropped, doubled or swapped letter.
LONG_WORDS = [
    ("Rheinmetall", "AG"), ("Sensetime", "Group"), ("Hikvision", "Digital Technology"),
    ("Rosoboronexport", "JSC"), ("Uralvagonzavod", "JSC"), ("Kalashnikov", "Concern"),
    ("Tupolev", "PJSC"), ("Angstrem", "JSC"), ("Fincantieri", "S.p.A."),
    ("Roketsan", "A.S."), ("Hensoldt", "AG"), ("Navantia", "S.A."), ("Jenoptik", "AG"),
    ("Megvii", "Technology"), ("Iflytek", "Co Ltd"), ("Phytium", "Technology"),
    ("Sugon", "Information Industry"), ("Inspur", "Group"), ("Cloudwalk", "Technology"),
    ("Yitu", "Technology"), ("Mytilineos", "S.A."),
    ("Elbrus", "Technologies"), ("Baikal", "Electronics"),
]


def typo_variants(w):
    # Drop the third letter, double the fourth, swap the middle pair, substitute the
    # second-to-last letter: the four kinds of one-letter typos.
    out = []
    if len(w) >= 6:
        out.append(w[:2] + w[3:])
        out.append(w[:3] + w[3] + w[3:])
        mid = len(w) // 2
        out.append(w[: mid - 1] + w[mid] + w[mid - 1] + w[mid + 1:])
        sub = "e" if w[-2] != "e" else "a"
        out.append(w[:-2] + sub + w[-1])
    return out


for word, rest in LONG_WORDS:
    for v in typo_variants(word):
        add("typos", "Company", f"{word} {rest}", f"{v} {rest}", True,
            "public knowledge: real company name with one letter typo (drop/double/swap/substitute)")
for a, b in [
    ("Hunan University", "Henan University"), ("Avia Trading", "Avio Trading"),
    ("Sino Trading", "Sina Trading"), ("Zhongxing Telecom", "Zhongxin Telecom"), ("Aero Engine Corporation", "Aeri Engine Corporation"), ("Mars Electronics", "Mark Electronics"),
    ("Kazan Helicopters", "Kazak Helicopters"), ("Omsk Transmash", "Tomsk Transmash"),
    ("Perm Motors", "Term Motors"), ("Ufa Engine", "Ura Engine"),
]:
    add("typos", "Company", a, b, False, "public knowledge: short words one letter apart name different things")

# 6. Other scripts: Cyrillic (BGN/PCGN, ISO 9, scholarly), Greek, Arabic, Chinese (pinyin with
# and without spaces, Wade-Giles).
for a, b, match in [
    ("Рособоронэкспорт", "Rosoboronexport", True),
    ("Уралвагонзавод", "Uralvagonzavod", True),
    ("Концерн Калашников", "Kontsern Kalashnikov", True),
    ("Концерн Калашников", "Koncern Kalašnikov", True),
    ("Алмаз-Антей", "Almaz-Antei", True),
    ("Сухой", "Sukhoi", True),
    ("Туполев", "Tupolev", True),
    ("Ростех", "Rostekh", True),
    ("Газпром нефть", "Gazprom Neft", True),
    ("Сбербанк России", "Sberbank Rossii", True),
    ("Общество с ограниченной ответственностью «Щит»", "Obŝestvo s ograničennoj otvetstvennostʹû Ŝit", True),
    ("Общество с ограниченной ответственностью «Щит»", "OOO Shchit", True),
    ("Мотор Сич", "Motor Sich", True),
    ("Антонов", "Antonov", True),
    ("Ελληνικά Πετρέλαια", "Ellinika Petrelaia", True),
    ("Μυτιληναίος", "Mytilineos", True),
    ("Κοπελούζος", "Kopelouzos", True),
    ("محمد", "Mohammad", True),
    ("عبد الله", "Abdullah", True),
    ("حسن", "Hassan", True),
    ("华为", "Huawei", True),
    ("华为技术有限公司", "Hua Wei Ji Shu You Xian Gong Si", True),
    ("华为技术有限公司", "Huawei Jishu Youxian Gongsi", True),
    ("海康威视", "Haikang Weishi", True),
    ("大华", "Dahua", True),
    ("商汤科技", "Shangtang Technology", True),
    ("中兴通讯", "Zhongxing Tongxun", True),
    ("北京大学", "Peking University", True),
    ("清华大学", "Tsinghua University", True),
    ("四川大学", "Sichuan University", True),
    ("哈尔滨工业大学", "Harbin Gongye University", True),
    ("南京大学", "Nanking University", True),
    ("中国电子科技集团公司第五十四研究所", "China Electronics Technology Group Corporation 54th Research Institute", True),
    ("北京商汤科技开发有限公司", "Beijing Shangtang Technology Development Co Ltd", True),
    ("Рособоронэкспорт", "Rosatom", False),
    ("Сухой", "Sokol", False),
    ("华为", "Huaxin", False),
    ("北京大学", "Nanjing University", False),
    ("清华大学", "Qinghai University", False),
    ("四川大学", "Sichuan Normal University", False),
    ("Туполев", "Ilyushin", False),
    ("محمد", "Ahmad", False),
]:
    add("cross_script", "Company" if not a.startswith(("محمد", "عبد", "حسن")) else "Person", a, b, match,
        "public knowledge: a name in its own script against a Latin rendering")

# 7. Persons: order, initials, patronymics and middle names, transliteration variants,
# hyphenated and double family names. Sanctioned persons as the press and the lists name them.
PERSONS = [
    ("Vladimir Vladimirovich Putin", ["PUTIN, Vladimir", "Putin Vladimir Vladimirovich", "V. V. Putin", "Vladimir Putin", "Владимир Владимирович Путин"]),
    ("Sergei Viktorovich Lavrov", ["Sergey Lavrov", "LAVROV, Sergei", "S. V. Lavrov", "Сергей Лавров"]),
    ("Sergei Kuzhugetovich Shoigu", ["Sergey Shoygu", "Shoigu, Sergei", "Сергей Шойгу"]),
    ("Alexander Grigoryevich Lukashenko", ["Aleksandr Lukashenka", "Alyaksandr Lukashenka", "LUKASHENKO, Alexander", "Aliaksandr Lukashenka"]),
    ("Igor Ivanovich Sechin", ["Igor Sechin", "SECHIN, Igor", "I. I. Sechin"]),
    ("Alisher Burkhanovich Usmanov", ["Alisher Usmanov", "USMANOV, Alisher"]),
    ("Roman Arkadyevich Abramovich", ["Roman Abramovich", "ABRAMOVICH Roman"]),
    ("Oleg Vladimirovich Deripaska", ["Oleg Deripaska", "DERIPASKA, Oleg"]),
    ("Viktor Feliksovich Vekselberg", ["Victor Vekselberg", "VEKSELBERG, Viktor"]),
    ("Yevgeniy Viktorovich Prigozhin", ["Yevgeny Prigozhin", "Evgeny Prigozhin", "PRIGOZHIN, Yevgeniy", "Evgenii Prigozhin"]),
    ("Ramzan Akhmatovich Kadyrov", ["Ramzan Kadyrov", "KADYROV, Ramzan"]),
    ("Dmitry Anatolyevich Medvedev", ["Dmitri Medvedev", "Dmitriy Medvedev", "MEDVEDEV, Dmitry"]),
    ("Arkady Romanovich Rotenberg", ["Arkadiy Rotenberg", "Arkadii Rotenberg", "ROTENBERG, Arkady"]),
    ("Gennady Nikolayevich Timchenko", ["Gennadiy Timchenko", "Gennadii Timchenko", "TIMCHENKO, Gennady"]),
    ("Yury Valentinovich Kovalchuk", ["Yuri Kovalchuk", "Yuriy Kovalchuk", "KOVALCHUK, Yury"]),
    ("Nikolai Platonovich Patrushev", ["Nikolay Patrushev", "PATRUSHEV, Nikolai"]),
    ("Alexander Vasilyevich Bortnikov", ["Aleksandr Bortnikov", "BORTNIKOV Alexander"]),
    ("Valery Vasilyevich Gerasimov", ["Valeriy Gerasimov", "Valerii Gerasimov", "GERASIMOV, Valery"]),
    ("Mikhail Vladimirovich Mishustin", ["Mikhail Mishustin", "MISHUSTIN, Mikhail"]),
    ("Kim Jong Un", ["KIM Jong-un", "Kim Jong-Un", "Kim Chong-un"]),
    ("Ali Hosseini Khamenei", ["Ali Khamenei", "Sayyid Ali Khamenei", "KHAMENEI, Ali"]),
    ("Qasem Soleimani", ["Qassem Soleimani", "Ghasem Soleimani", "Qasim Sulaymani", "SOLEIMANI, Qasem"]),
    ("Bashar al-Assad", ["Bashar Al Assad", "Bashar Assad", "ASSAD, Bashar al-"]),
    ("Nicolas Maduro Moros", ["Nicolás Maduro", "MADURO MOROS, Nicolas"]),
    ("Daniel Ortega Saavedra", ["Daniel Ortega", "ORTEGA SAAVEDRA, Jose Daniel"]),
    ("Hassan Nasrallah", ["Hasan Nasrallah", "Hassan Nasrullah", "NASRALLAH, Hassan"]),
    ("Ayman al-Zawahiri", ["Ayman al Zawahiri", "Aiman al-Zawahiri", "ZAWAHIRI, Ayman al-"]),
    ("Joaquin Archivaldo Guzman Loera", ["Joaquín Guzmán Loera", "Joaquin Guzman", "GUZMAN LOERA, Joaquin"]),
    ("Mohammed bin Abdullah", ["Muhammad bin Abdullah", "Mohamed bin Abdallah", "Mohammad Bin Abdulla"]),
    ("Yusuf Abdullah Ahmed", ["Youssef Abdullah Ahmed", "Yousef Abdallah Ahmed", "Yusef Abdulla Ahmad"]),
    ("Ibrahim Hassan Ali", ["Ebrahim Hasan Ali", "Ibraheem Hassan Ali"]),
    ("Hossein Dehghan", ["Hussein Dehghan", "Hosein Dehqan"]),
    ("Mohammad Javad Zarif", ["Mohammad Jawad Zarif", "ZARIF, Mohammad Javad", "Muhammad Javad Zarif"]),
    ("Maria José García-López", ["Maria Jose Garcia Lopez", "María José García López", "GARCIA-LOPEZ, Maria Jose"]),
    ("Ahmad Shah Massoud", ["Ahmed Shah Masood", "Ahmad Shah Masud"]),
    ("Meng Wanzhou", ["MENG, Wanzhou", "Wanzhou Meng"]),
    ("Ren Zhengfei", ["REN Zhengfei", "Zhengfei Ren"]),
]
for full, variants in PERSONS:
    for v in variants:
        add("persons", "Person", full, v, True, "public knowledge: sanctioned or public person, published name variants")
for a, b in [
    ("Arkady Romanovich Rotenberg", "Boris Romanovich Rotenberg"),
    ("Vladimir Vladimirovich Putin", "Vladimir Olegovich Potanin"),
    ("Sergei Viktorovich Lavrov", "Sergei Kuzhugetovich Shoigu"),
    ("Kim Jong Un", "Kim Jong Il"),
    ("Kim Jong Un", "Kim Yo Jong"),
    ("Ali Hosseini Khamenei", "Mojtaba Khamenei"),
    ("Bashar al-Assad", "Maher al-Assad"),
    ("Ramzan Kadyrov", "Akhmad Kadyrov"),
    ("Dmitry Medvedev", "Dmitry Peskov"),
    ("Mohammad Reza Ahmadi", "Mohammad Ali Ahmadi"),
    ("Mohammed bin Salman", "Mohammed bin Zayed"),
    ("Igor Sechin", "Igor Shuvalov"),
    ("Yury Kovalchuk", "Mikhail Kovalchuk"),
    ("Oleg Deripaska", "Oleg Tinkov"),
    ("Hassan Nasrallah", "Hassan Rouhani"),
    ("Alexander Lukashenko", "Viktor Lukashenko"),
    ("Nicolas Maduro", "Nicolas Sarkozy"),
    ("Daniel Ortega", "Rosario Murillo"),
    ("Meng Wanzhou", "Meng Hongwei"),
    ("Ren Zhengfei", "Ren Zhiqiang"),
    ("Maria Garcia Lopez", "Maria Garcia Perez"),
    ("Qasem Soleimani", "Qasem Soltani"),
    ("John Smith", "Jane Smith"),
    ("Smith", "John Smith"),
    ("Putin", "Vladimir Putin"),
]:
    add("persons", "Person", a, b, False, "public knowledge: different persons who share a name part")

# 8. Precision: a missing distinctive word, bracketed places, one shared rare word.
for a, b in [
    ("Beijing Technology Development Co Ltd", "Beijing Sensetime Technology Development Co., Ltd."),
    ("Hangzhou Digital Technology Co Ltd", "Hangzhou Hikvision Digital Technology Co., Ltd."),
    ("Zhejiang Technology Co Ltd", "Zhejiang Dahua Technology Co., Ltd."),
    ("Shenzhen Technology Co Ltd", "Shenzhen Huawei Technology Co., Ltd."),
    ("Beijing Information Technology Co Ltd", "Beijing Megvii Information Technology Co., Ltd."),
    ("Shanghai Micro Electronics Equipment", "Shanghai Huahong Micro Electronics Equipment"),
    ("Moscow Institute of Physics and Technology", "Moscow Aviation Institute"),
    ("National University of Defense Technology", "National University of Singapore"),
    ("Public Security Bureau", "Xinjiang Public Security Bureau"),
    ("China Electronics Technology Group", "China Electronics Corporation"),
    ("Airbus Defence and Space (Spain)", "Airbus Defence and Space (Netherlands)"),
    ("Siemens Healthineers (China)", "Siemens Healthineers (India)"),
    ("Huawei Technologies (Thailand) Co Ltd", "Huawei Technologies (Malaysia) Co Ltd"),
    ("Thales Alenia Space (France)", "Thales Alenia Space (Italy)"),
    ("Saab Technologies (UK)", "Saab Technologies (Australia)"),
    ("Moore Threads Technology (Beijing)", "Moore Threads Technology (Shanghai)"),
    ("Rohde & Schwarz (Munich)", "Rohde & Schwarz (Singapore)"),
    ("Kalashnikov Concern", "Kalashnikov Vodka Distillery"),
    ("Gazprom Neft", "Gazprom Transgaz"),
    ("Rostec Kalashnikov", "Rostec Avia Holding"),
    ("Hikvision", "Hikvision Robotics Automation"),
    ("Rheinmetall Waffe Munition", "Rheinmetall Electronics"),
    ("Baikal Electronics", "Baikal Pharmacy"),
    ("Elbrus Technologies", "Elbrus Tourism Agency"),
]:
    add("precision", "Company", a, b, False, "public knowledge: look-alike names of different organisations")
for a, b in [
    ("SENSETIME TECH DEV CO LTD", "Beijing Sensetime Technology Development Co., Ltd."),
    ("HIKVISION DIGITAL TECH CO LTD", "Hangzhou Hikvision Digital Technology Co., Ltd."),
    ("Airbus Defence and Space (Spain)", "Airbus Defence and Space Spain"),
    ("Huawei Technologies (Thailand) Co Ltd", "Huawei Technologies Thailand"),
    ("Dahua Technology Co Ltd", "Zhejiang Dahua Technology Co., Ltd."),
    ("Megvii Technology", "Beijing Megvii Technology Co., Ltd."),
]:
    add("precision", "Company", a, b, True, "public knowledge: one company written with or without its city")

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w", newline="", encoding="utf-8") as f:
    f.write("# Generated by `python3 scripts/generate_screening_cases.py`; do not edit by hand.\n")
    w = csv.writer(f)
    w.writerow(["name1", "name2", "is_match", "schema", "category", "source"])
    w.writerows(rows)
print(len(rows), "pairs written to", OUT)
