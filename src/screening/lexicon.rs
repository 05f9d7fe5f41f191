//! Word lists of the matcher: legal forms, abbreviations, number words, stopwords and common
//! Chinese words, all written in the folded form the normaliser produces (lowercase ASCII words).
//!
//! Only data and lookups live here; it must never hold matching logic or read a file, so that a
//! reviewer can check a list against the world without reading code. A word belongs in
//! [`LEGAL_FORMS`] only if it says *what kind of legal person* a name is and never *which* one:
//! legal forms are dropped before scoring, so a wrong entry here hides evidence.

/// Legal-form phrases across languages, as folded token sequences. Dots between single letters
/// are already merged by the normaliser ("L.L.C." → `llc`, "A.Ş." → `as`, "Sp. z o.o." →
/// `sp z oo`), so each phrase is listed once per spelling that survives folding.
pub const LEGAL_FORMS: &[&str] = &[
    // English and the forms used by English-language registers worldwide.
    "company limited",
    "limited company",
    "limited liability company",
    "limited liability partnership",
    "limited partnership",
    "public limited company",
    "private limited company",
    "private limited",
    "pvt ltd",
    "pvt",
    "pte ltd",
    "pte",
    "pty ltd",
    "pty",
    "p ltd",
    "co ltd",
    "company",
    "companies",
    "co",
    "cos",
    "ltd",
    "ltda",
    "limited",
    "llc",
    "l l c",
    "llp",
    "lp",
    "plc",
    "inc",
    "incorporated",
    "incorporation",
    "corp",
    "corporation",
    "joint stock company",
    "joint stock co",
    "jointstock company",
    "jointstock co",
    "public joint stock company",
    "public joint stock co",
    "open joint stock company",
    "open joint stock co",
    "closed joint stock company",
    "closed joint stock co",
    "non public joint stock company",
    "ltd liability company",
    "ltd liability co",
    "limited liability co",
    "ltd liability partnership",
    "private",
    "joint venture company",
    "state corporation",
    "jsc",
    "ojsc",
    "cjsc",
    "pjsc",
    "jsco",
    "jscb",
    // Russian, Ukrainian, Belarusian, Kazakh (transliterated).
    "ooo",
    "zao",
    "oao",
    "pao",
    "ao",
    "nao",
    "tov",
    "too",
    "pat",
    "prat",
    "fgup",
    "fsue",
    "fgbu",
    "federal state unitary enterprise",
    "obshchestvo s ogranichennoy otvetstvennostyu",
    "obshchestvo s ogranichennoi otvetstvennostyu",
    "obshchestvo s ogranichennoj otvetstvennostju",
    "obshchestvo s ogranichennoy otvetstvennostiu",
    "obshchestvo s ogranichennoi otvetstvennostiu",
    "obshestvo s ogranichennoy otvetstvennostyu",
    "aktsionernoe obshchestvo",
    "aktsionernoye obshchestvo",
    "aktsionernoe obshestvo",
    "akcionernoe obshchestvo",
    "zakrytoe aktsionernoe obshchestvo",
    "zakrytoye aktsionernoye obshchestvo",
    "otkrytoe aktsionernoe obshchestvo",
    "otkrytoye aktsionernoye obshchestvo",
    "publichnoe aktsionernoe obshchestvo",
    "publichnoye aktsionernoye obshchestvo",
    // German, Austrian, Swiss, Dutch, Belgian, Nordic.
    "gmbh",
    "mbh",
    "gmbh and co kg",
    "ag",
    "kg",
    "ohg",
    "ug",
    "bv",
    "nv",
    "vof",
    "ab",
    "as",
    "asa",
    "aps",
    "oy",
    "oyj",
    // Romance languages and Latin America.
    "sa",
    "s a",
    "sa de cv",
    "s a de c v",
    "sa de cv",
    "s de rl",
    "s de rl de cv",
    "sas",
    "sarl",
    "sl",
    "slu",
    "srl",
    "spa",
    "snc",
    "sal",
    "societe anonyme",
    "sociedad anonima",
    "societa per azioni",
    "sociedade anonima",
    // Central and Eastern Europe.
    "sp z oo",
    "sp zoo",
    "spolka z oo",
    "spolka z ograniczona odpowiedzialnoscia",
    "sro",
    "s r o",
    "doo",
    "dd",
    "ad",
    "ead",
    "eood",
    "ood",
    "kft",
    "zrt",
    "nyrt",
    "bt",
    // Turkish.
    "limited sirketi",
    "ltd sti",
    "sti",
    "anonim sirketi",
    "as",
    "tas",
    // Gulf free zones and the Middle East.
    "fze",
    "fzco",
    "fzc",
    "fz llc",
    "fz",
    "llc fz",
    "fz co",
    "dmcc",
    "wll",
    "sherkat",
    "pjs",
    // South and South-East Asia, Africa, Japan, Korea.
    "sdn bhd",
    "sendirian berhad",
    "bhd",
    "berhad",
    "tbk",
    "pt",
    "kabushiki kaisha",
    "kk",
    "godo kaisha",
    "yugen kaisha",
    "jusikhoesa",
];

/// Legal forms that are also ordinary words or initials ("AS", "SA", "AG", "AO", "PT", ...):
/// dropped only at either end of a name, where a legal form stands, never in the middle.
pub const AMBIGUOUS_LEGAL_FORMS: &[&str] = &[
    "ab", "ad", "ag", "ao", "as", "bt", "bv", "dd", "kg", "kk", "lp", "nv", "oy", "pat", "pt",
    "sa", "sal", "sas", "sl", "spa", "too", "ug", "pte", "pty", "pvt", "sherkat", "tas", "private",
    "fz",
];

/// The ambiguous legal forms that stand *before* the name (Russian "AO X", Indonesian "PT X",
/// Persian "Sherkat X"); the others only close a name, so "A.S. Yakovlev" keeps its initials.
pub const AMBIGUOUS_LEGAL_FORMS_FIRST: &[&str] = &["ao", "pt", "pat", "sherkat", "too"];

/// Spelled-out legal-form words long enough that a one-letter typo ("Compny", "Limted") is still
/// recognisably the legal form; shorter ones must match exactly.
pub const FUZZY_LEGAL_MIN_LEN: usize = 6;

/// Abbreviations and inflected forms folded to one canonical word (already singular, since the
/// plural fold runs after this map). Only unambiguous business abbreviations: "Med" (medical or
/// Mediterranean) and "Indus" (a river, a brand) are deliberately absent.
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("tech", "technology"),
    ("techn", "technology"),
    ("technol", "technology"),
    ("techno", "technology"),
    ("technologies", "technology"),
    ("intl", "international"),
    ("internat", "international"),
    ("mfg", "manufacturing"),
    ("manuf", "manufacturing"),
    ("mfr", "manufacturer"),
    ("mfrs", "manufacturer"),
    ("elec", "electronic"),
    ("electr", "electronic"),
    ("electronics", "electronic"),
    ("sci", "science"),
    ("eng", "engineering"),
    ("engg", "engineering"),
    ("engr", "engineering"),
    ("dev", "development"),
    ("devt", "development"),
    ("grp", "group"),
    ("ind", "industry"),
    ("inds", "industry"),
    ("industrial", "industry"),
    ("industries", "industry"),
    ("svc", "service"),
    ("svcs", "service"),
    ("serv", "service"),
    ("natl", "national"),
    ("univ", "university"),
    ("inst", "institute"),
    ("acad", "academy"),
    ("res", "research"),
    ("assn", "association"),
    ("assoc", "association"),
    ("dept", "department"),
    ("ctr", "center"),
    ("cntr", "center"),
    ("centre", "center"),
    ("equip", "equipment"),
    ("eqpt", "equipment"),
    ("sys", "system"),
    ("comm", "communication"),
    ("commun", "communication"),
    ("mgmt", "management"),
    ("trdg", "trading"),
    ("hldg", "holding"),
    ("hldgs", "holding"),
    ("bros", "brother"),
    ("chem", "chemical"),
    ("pharm", "pharmaceutical"),
    ("pharma", "pharmaceutical"),
    ("gen", "general"),
    ("govt", "government"),
    ("mech", "mechanical"),
    ("prod", "product"),
    ("prods", "product"),
    ("ent", "enterprise"),
    ("mach", "machinery"),
    ("invest", "investment"),
    ("st", "saint"),
    ("sankt", "saint"),
    ("sv", "saint"),
    ("san", "industry"),
    ("tic", "trade"),
    ("el", "al"),
    // Words that romanised Russian and Turkish names use where English renderings translate.
    ("kontsern", "concern"),
    ("koncern", "concern"),
    ("kontcern", "concern"),
    ("zavod", "plant"),
    ("institut", "institute"),
    ("universitet", "university"),
    ("akademiya", "academy"),
    ("tsentr", "center"),
    ("centr", "center"),
    ("gruppa", "group"),
    ("tekhnologii", "technology"),
    ("tekhnologiya", "technology"),
    ("tekhnologiy", "technology"),
    ("teknoloji", "technology"),
    ("teknolojileri", "technology"),
    ("elektronika", "electronic"),
    ("elektronik", "electronic"),
    ("sanayi", "industry"),
    ("sanayii", "industry"),
    ("ticaret", "trade"),
];

/// Endings of East Slavic patronymics ("Viktorovich", "Ivanovna"): a middle name that registers
/// often omit, so it is optional evidence.
pub const PATRONYMIC_ENDINGS: &[&str] = &["ovich", "evich", "ovych", "evych", "ovna", "evna", "ivna"];

/// Words that carry no identity in any name.
pub const STOPWORDS: &[&str] = &[
    "the", "of", "and", "for", "in", "at", "on", "to", "by", "ve", "und", "et", "de", "du", "des",
    "der", "die", "das", "la", "le", "les",
];

/// Cardinal and ordinal number words folded to digits, so "First", "1st" and "1" agree.
pub const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("first", "1"),
    ("two", "2"),
    ("second", "2"),
    ("three", "3"),
    ("third", "3"),
    ("four", "4"),
    ("fourth", "4"),
    ("five", "5"),
    ("fifth", "5"),
    ("six", "6"),
    ("sixth", "6"),
    ("seven", "7"),
    ("seventh", "7"),
    ("eight", "8"),
    ("eighth", "8"),
    ("nine", "9"),
    ("ninth", "9"),
    ("ten", "10"),
    ("tenth", "10"),
    ("eleven", "11"),
    ("eleventh", "11"),
    ("twelve", "12"),
    ("twelfth", "12"),
    ("thirteen", "13"),
    ("thirteenth", "13"),
    ("fourteen", "14"),
    ("fourteenth", "14"),
    ("fifteen", "15"),
    ("fifteenth", "15"),
    ("sixteen", "16"),
    ("sixteenth", "16"),
    ("seventeen", "17"),
    ("seventeenth", "17"),
    ("eighteen", "18"),
    ("eighteenth", "18"),
    ("nineteen", "19"),
    ("nineteenth", "19"),
    ("twenty", "20"),
    ("twentieth", "20"),
    ("thirty", "30"),
    ("thirtieth", "30"),
    ("forty", "40"),
    ("fortieth", "40"),
    ("fifty", "50"),
    ("fiftieth", "50"),
    ("hundred", "100"),
    ("hundredth", "100"),
];

/// Words that mark "number" before a numeral ("No. 2", "Number 5", "Nr 3", "#7"): dropped
/// there, kept elsewhere ("Nr" alone may be a name).
pub const NUMBER_MARKERS: &[&str] = &["no", "number", "nr", "num", "nomer"];

/// Russian ordinal endings written after a numeral ("5-y Zavod", "46-i"), dropped there.
pub const ORDINAL_SUFFIXES: &[&str] = &[
    "y", "yy", "iy", "yi", "i", "ya", "ye", "oy", "go", "j", "aya", "th", "st", "nd", "rd",
];

/// Words whose presence makes the rest of a qualifier ("Shenzhen Branch") optional evidence: a
/// branch or office of a listed entity is that entity.
pub const BRANCH_WORDS: &[&str] = &["branch", "office", "representative", "filial", "filiale"];

/// Places that, in parentheses, name a *different* subsidiary ("Moore Threads (Shanghai)" and
/// "(Beijing)" are two listed entities), so they stay full evidence; other parenthesised words
/// (acronyms such as "(CETC)", "(NSCL)") are optional.
pub const PLACES: &[&str] = &[
    "beijing", "shanghai", "shenzhen", "guangzhou", "tianjin", "chongqing", "chengdu", "wuhan",
    "hangzhou", "nanjing", "xian", "suzhou", "dongguan", "qingdao", "hefei", "changsha", "harbin",
    "shenyang", "dalian", "xiamen", "zhengzhou", "jinan", "kunming", "fuzhou", "ningbo", "wuxi",
    "foshan", "zhuhai", "nanchang", "taiyuan", "shijiazhuang", "guiyang", "nanning", "lanzhou",
    "changchun", "urumqi", "hohhot", "hong", "kong", "hongkong", "macau", "macao", "taiwan",
    "taipei", "guangdong", "jiangsu", "zhejiang", "shandong", "sichuan", "hubei", "hunan", "henan",
    "hebei", "fujian", "anhui", "jiangxi", "liaoning", "jilin", "heilongjiang", "shaanxi",
    "shanxi", "yunnan", "guizhou", "guangxi", "hainan", "gansu", "xinjiang", "tibet", "ningxia",
    "qinghai", "mongolia", "china", "russia", "moscow", "belarus", "minsk", "iran", "tehran",
    "pakistan", "karachi", "lahore", "islamabad", "india", "singapore", "malaysia", "thailand",
    "vietnam", "indonesia", "philippines", "japan", "korea", "turkey", "istanbul", "ankara", "uae",
    "dubai", "emirates", "germany", "france", "italy", "spain", "netherlands", "uk", "england",
    "usa", "america", "canada", "mexico", "brazil", "africa", "armenia", "georgia", "kazakhstan",
    "uzbekistan", "kyrgyzstan", "syria", "lebanon", "iraq", "israel", "egypt", "europe", "asia",
];

/// Common words of Chinese entity names, translated before transliteration so that
/// "华为技术有限公司" meets "Huawei Technologies Co., Ltd." on the English side; without this,
/// pinyin would glue the whole name into one word. Longest first matters: the normaliser tries
/// entries in this order.
pub const CJK_WORDS: &[(&str, &str)] = &[
    ("股份有限公司", " co ltd "),
    ("有限责任公司", " co ltd "),
    ("有限公司", " co ltd "),
    ("株式会社", " kk "),
    ("有限会社", " kk "),
    ("研究所", " research institute "),
    ("研究院", " research institute "),
    ("公安局", " public security bureau "),
    ("中国", " china "),
    ("集团", " group "),
    ("公司", " company "),
    ("科技", " technology "),
    ("技术", " technology "),
    ("电子", " electronic "),
    ("大学", " university "),
    ("工程", " engineering "),
    ("学院", " institute "),
    ("航空", " aviation "),
    ("航天", " aerospace "),
    ("工业", " industry "),
    ("实业", " industry "),
    ("贸易", " trading "),
    ("国际", " international "),
    ("信息", " information "),
    ("通信", " communication "),
    ("设备", " equipment "),
    ("仪器", " instrument "),
    ("控股", " holding "),
    ("投资", " investment "),
    ("发展", " development "),
    ("软件", " software "),
    ("网络", " network "),
    ("系统", " system "),
    ("智能", " intelligent "),
    ("光电", " optoelectronic "),
    ("微电子", " microelectronic "),
    ("半导体", " semiconductor "),
    ("分公司", " branch "),
    ("分院", " branch "),
];

pub fn is_place(token: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| PLACES.iter().copied().collect())
        .contains(token)
}

pub fn is_stopword(token: &str) -> bool {
    STOPWORDS.contains(&token)
}

pub fn abbreviation(token: &str) -> Option<&'static str> {
    ABBREVIATIONS
        .iter()
        .find(|(abbr, _)| *abbr == token)
        .map(|(_, full)| *full)
}

pub fn number_word(token: &str) -> Option<&'static str> {
    NUMBER_WORDS
        .iter()
        .find(|(word, _)| *word == token)
        .map(|(_, digits)| *digits)
}
