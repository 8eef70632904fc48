//! patterns._number_spans: the candidate spans of the number-led patterns
//! (IBAN, card, IPv4, SSN, phone), each as Python's `finditer` of that pattern
//! alone gives them. Every pattern is matched by hand in the order a
//! backtracking engine tries its choices; digit runs are taken whole where
//! giving a digit back can only leave a digit where none may follow. The
//! Python patterns are quoted beside each matcher; `\d` is a decimal digit
//! and `\w` a word character by Python's tables (`Text`).
use std::collections::HashMap;

use super::text::{Text, DECIMAL, WORD};

pub struct Spans {
    pub iban: Vec<(usize, usize)>,
    pub card: Vec<(usize, usize)>,
    pub ip4: Vec<(usize, usize)>,
    pub ssn: Vec<(usize, usize)>,
    pub phone: Vec<(usize, usize)>,
}

pub fn number_spans(t: &Text) -> Spans {
    let n = t.len();
    let mut out = Spans {
        iban: Vec::new(),
        card: Vec::new(),
        ip4: Vec::new(),
        ssn: Vec::new(),
        phone: Vec::new(),
    };
    let mut ends = [0usize; 5];
    let m = Matcher { t };
    let mut p = 0;
    while p < n {
        let c = t.c[p];
        let digit = t.f[p] & DECIMAL != 0;
        if !(digit || c == '+' || c == '(') {
            p += 1;
            continue;
        }
        let found = [
            if digit { m.iban(p) } else { None },
            if digit { m.card(p) } else { None },
            if digit { m.ip4(p) } else { None },
            if digit { m.ssn(p) } else { None },
            m.phone(p),
        ];
        let lists = [
            &mut out.iban,
            &mut out.card,
            &mut out.ip4,
            &mut out.ssn,
            &mut out.phone,
        ];
        for (k, (list, end)) in lists.into_iter().zip(found).enumerate() {
            if let Some(e) = end {
                if p >= ends[k] {
                    list.push((p, e));
                    ends[k] = e;
                }
            }
        }
        // the combined regex consumes the digit run (or the "+"/"(")
        if digit {
            while p < n && t.f[p] & DECIMAL != 0 {
                p += 1;
            }
        } else {
            p += 1;
        }
    }
    out
}

struct Matcher<'a, 'p> {
    t: &'a Text<'p>,
}

fn ascii_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

impl Matcher<'_, '_> {
    fn digit(&self, i: usize) -> bool {
        self.t.has(i, DECIMAL)
    }
    fn word(&self, i: usize) -> bool {
        self.t.has(i, WORD)
    }
    fn is(&self, i: usize, f: impl Fn(char) -> bool) -> bool {
        self.t.at(i).is_some_and(f)
    }
    /// Length of the digit run at `i`.
    fn run(&self, i: usize) -> usize {
        let mut j = i;
        while self.digit(j) {
            j += 1;
        }
        j - i
    }

    /// `\d\d(?<=[A-Za-z]{2}\d\d)(?<!\w[A-Za-z]{2}\d\d)(?:[ ]?[A-Za-z0-9]{4}){2,7}`
    /// `(?:[ ]?[A-Za-z0-9]{1,3})?(?!\w)`
    fn iban(&self, p: usize) -> Option<usize> {
        let t = self.t;
        if p < 2 || !self.digit(p + 1) {
            return None;
        }
        if !(t.c[p - 2].is_ascii_alphabetic() && t.c[p - 1].is_ascii_alphabetic()) {
            return None;
        }
        if p >= 3 && self.word(p - 3) {
            return None;
        }
        let alnum_run = |q: usize, len: usize| (q..q + len).all(|i| self.is(i, ascii_alnum));
        // the groups of four: one way each ("[ ]?" before a space-free class)
        let mut ends = vec![p + 2];
        while ends.len() < 8 {
            let q = *ends.last().expect("a start");
            let q = if self.is(q, |c| c == ' ') { q + 1 } else { q };
            if alnum_run(q, 4) {
                ends.push(q + 4);
            } else {
                break;
            }
        }
        for count in (2..ends.len()).rev() {
            let q = ends[count];
            // the optional tail of one to three, longest first, then none
            let s = if self.is(q, |c| c == ' ') { q + 1 } else { q };
            for len in (1..=3).rev() {
                if alnum_run(s, len) && !self.word(s + len) {
                    return Some(s + len);
                }
            }
            if !self.word(q) {
                return Some(q);
            }
        }
        None
    }

    /// `\d(?<![\w+-]\d)(?=[\d -]{11})(?:[ -]?\d){11,18}(?![\w-])`
    fn card(&self, p: usize) -> Option<usize> {
        let t = self.t;
        if p > 0 && (self.word(p - 1) || matches!(t.c[p - 1], '+' | '-')) {
            return None;
        }
        if !(p + 1..p + 12).all(|i| self.digit(i) || self.is(i, |c| c == ' ' || c == '-')) {
            return None;
        }
        let mut ends = vec![p + 1];
        while ends.len() < 19 {
            let q = *ends.last().expect("a start");
            let q = if self.is(q, |c| c == ' ' || c == '-') {
                q + 1
            } else {
                q
            };
            if self.digit(q) {
                ends.push(q + 1);
            } else {
                break;
            }
        }
        (11..ends.len())
            .rev()
            .map(|k| ends[k])
            .find(|&q| !(self.word(q) || self.is(q, |c| c == '-')))
    }

    /// `\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)`
    fn ip4(&self, p: usize) -> Option<usize> {
        let t = self.t;
        if p > 0 && (self.word(p - 1) || t.c[p - 1] == '.') {
            return None;
        }
        let first = self.run(p);
        if first > 3 {
            return None;
        }
        let mut q = p + first;
        for _ in 0..3 {
            if !self.is(q, |c| c == '.') {
                return None;
            }
            let len = self.run(q + 1);
            if !(1..=3).contains(&len) {
                return None;
            }
            q += 1 + len;
        }
        if self.word(q) || (self.is(q, |c| c == '.') && self.digit(q + 1)) {
            return None;
        }
        Some(q)
    }

    /// `\d(?<![\w-]\d)\d\d([- .]?)\d{2}\1\d{4}(?![\w-])`
    fn ssn(&self, p: usize) -> Option<usize> {
        let t = self.t;
        if p > 0 && (self.word(p - 1) || t.c[p - 1] == '-') {
            return None;
        }
        if !(self.digit(p + 1) && self.digit(p + 2)) {
            return None;
        }
        let mut q = p + 3;
        let sep = t.at(q).filter(|c| matches!(c, '-' | ' ' | '.'));
        if sep.is_some() {
            q += 1;
        }
        if !(self.digit(q) && self.digit(q + 1)) {
            return None;
        }
        q += 2;
        if let Some(s) = sep {
            if t.at(q) != Some(s) {
                return None;
            }
            q += 1;
        }
        if !(q..q + 4).all(|i| self.digit(i)) {
            return None;
        }
        q += 4;
        if self.word(q) || self.is(q, |c| c == '-') {
            return None;
        }
        Some(q)
    }

    /// A letter under `re.IGNORECASE`: ASCII either case, and the four other
    /// letters Python folds to ASCII ones.
    fn letter(&self, i: usize) -> Option<char> {
        match self.t.at(i)? {
            c @ ('a'..='z' | 'A'..='Z') => Some(c.to_ascii_lowercase()),
            '\u{130}' | '\u{131}' => Some('i'),
            '\u{17f}' => Some('s'),
            '\u{212a}' => Some('k'),
            _ => None,
        }
    }

    fn word_at(&self, i: usize, w: &str) -> bool {
        w.chars()
            .enumerate()
            .all(|(k, c)| self.letter(i + k) == Some(c))
    }

    /// The phone pattern (IGNORECASE):
    /// `[+(\d](?<![\w+@/.-][+(\d])(?=[\d+()./ \-xXeEtTnNsSiIoO]{6}[...])`
    /// `(?:(?<=\+)\d{0,3}[ .-]?)?(?:(?<=\()\+?\d{1,5}\)[ .-]?)?`
    /// `\d{0,12}(?:(?:[ ]?[.-]|[ ]|[ ]?\(\d{1,4}\)[ ]?|/)\d{1,12}){0,6}`
    /// `(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?(?![\w@:]|[.-]\d)`
    fn phone(&self, p: usize) -> Option<usize> {
        let t = self.t;
        let c0 = t.c[p];
        if p > 0 && (self.word(p - 1) || matches!(t.c[p - 1], '+' | '@' | '/' | '.' | '-')) {
            return None;
        }
        let in_class = |i: usize| {
            self.digit(i)
                || self.is(i, |c| matches!(c, '+' | '(' | ')' | '.' | '/' | ' ' | '-'))
                || matches!(
                    self.letter(i),
                    Some('x' | 'e' | 't' | 'n' | 's' | 'i' | 'o')
                )
        };
        if !(p + 1..p + 8).all(in_class) {
            return None;
        }
        let mut memo: HashMap<(usize, usize), Option<usize>> = HashMap::new();
        // positions after the optional country code (A), in the order tried
        let sep_after = |q: usize| -> Vec<usize> {
            if self.is(q, |c| matches!(c, ' ' | '.' | '-')) {
                vec![q + 1, q]
            } else {
                vec![q]
            }
        };
        let mut after_a: Vec<usize> = Vec::new();
        if c0 == '+' {
            let run = self.run(p + 1).min(3);
            for k in (0..=run).rev() {
                after_a.extend(sep_after(p + 1 + k));
            }
        }
        after_a.push(p + 1);
        for a in after_a {
            // B: an area code in parentheses right after "("
            let mut after_b: Vec<usize> = Vec::new();
            if a > 0 && t.c[a - 1] == '(' {
                let s = if self.is(a, |c| c == '+') { a + 1 } else { a };
                let run = self.run(s);
                if (1..=5).contains(&run) && self.is(s + run, |c| c == ')') {
                    after_b.extend(sep_after(s + run + 1));
                }
                if self.is(a, |c| c == '+') {
                    // "\+?" without the plus: digits right after "("
                    let run = self.run(a);
                    if (1..=5).contains(&run) && self.is(a + run, |c| c == ')') {
                        after_b.extend(sep_after(a + run + 1));
                    }
                }
            }
            after_b.push(a);
            for b in after_b {
                // C: up to twelve digits, longest first
                let run = self.run(b).min(12);
                for k in (0..=run).rev() {
                    if let Some(e) = self.groups(b + k, 0, &mut memo) {
                        return Some(e);
                    }
                }
            }
        }
        None
    }

    /// D (`count` groups so far), then E and the final look-ahead.
    fn groups(
        &self,
        y: usize,
        count: usize,
        memo: &mut HashMap<(usize, usize), Option<usize>>,
    ) -> Option<usize> {
        if let Some(&r) = memo.get(&(y, count)) {
            return r;
        }
        let mut result = None;
        if count < 6 {
            for z in self.separators(y) {
                // \d{1,12}: the whole run (a shorter one leaves a digit)
                let run = self.run(z);
                if run == 0 {
                    continue;
                }
                if run > 12 {
                    continue;
                }
                if let Some(e) = self.groups(z + run, count + 1, memo) {
                    result = Some(e);
                    break;
                }
            }
        }
        if result.is_none() {
            result = self.extension(y);
        }
        memo.insert((y, count), result);
        result
    }

    /// Where each separator choice ends, in the order tried:
    /// `[ ]?[.-]`, `[ ]`, `[ ]?\(\d{1,4}\)[ ]?`, `/`.
    fn separators(&self, y: usize) -> Vec<usize> {
        let sp = |i: usize| self.is(i, |c| c == ' ');
        let dot = |i: usize| self.is(i, |c| c == '.' || c == '-');
        let mut out = Vec::new();
        if sp(y) && dot(y + 1) {
            out.push(y + 2);
        } else if dot(y) {
            out.push(y + 1);
        }
        if sp(y) {
            out.push(y + 1);
        }
        let paren = |s: usize, out: &mut Vec<usize>| {
            if self.is(s, |c| c == '(') {
                let run = self.run(s + 1);
                if (1..=4).contains(&run) && self.is(s + 1 + run, |c| c == ')') {
                    let e = s + 2 + run;
                    if sp(e) {
                        out.push(e + 1);
                    }
                    out.push(e);
                }
            }
        };
        if sp(y) {
            paren(y + 1, &mut out);
        }
        paren(y, &mut out);
        if self.is(y, |c| c == '/') {
            out.push(y + 1);
        }
        out
    }

    /// E `(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?`, then
    /// `(?![\w@:]|[.-]\d)`.
    fn extension(&self, y: usize) -> Option<usize> {
        let sp = |i: usize| self.is(i, |c| c == ' ');
        let starts: &[usize] = if sp(y) { &[y + 1, y] } else { &[y] };
        for &s in starts {
            let mut words: Vec<usize> = Vec::new();
            if self.letter(s) == Some('x') {
                words.push(s + 1);
            }
            if self.word_at(s, "ext") {
                if self.is(s + 3, |c| c == '.') {
                    words.push(s + 4);
                }
                words.push(s + 3);
            }
            if self.word_at(s, "extension") {
                words.push(s + 9);
            }
            for w in words {
                let digits_at: &[usize] = if sp(w) { &[w + 1, w] } else { &[w] };
                for &d in digits_at {
                    let run = self.run(d);
                    if (1..=6).contains(&run) && self.free(d + run) {
                        return Some(d + run);
                    }
                }
            }
        }
        if self.free(y) {
            Some(y)
        } else {
            None
        }
    }

    /// `(?![\w@:]|[.-]\d)`
    fn free(&self, i: usize) -> bool {
        !(self.word(i)
            || self.is(i, |c| c == '@' || c == ':')
            || (self.is(i, |c| c == '.' || c == '-') && self.digit(i + 1)))
    }
}
