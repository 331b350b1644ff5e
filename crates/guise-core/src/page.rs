//! Offset pagination shared by every list endpoint (`page`, `per_page`).

/// Largest page any list returns, as Auth0 caps `per_page`.
pub const MAX_PER_PAGE: u32 = 100;
pub const DEFAULT_PER_PAGE: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    /// Clamp what a caller asked for to the allowed range.
    pub fn new(page: Option<u32>, per_page: Option<u32>) -> Self {
        Self { page: page.unwrap_or(0), per_page: per_page.unwrap_or(DEFAULT_PER_PAGE).clamp(1, MAX_PER_PAGE) }
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page) * i64::from(self.per_page)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// Every item `fetch` yields, page by page at the largest page size, until a short page.
pub fn every_page<T, E>(mut fetch: impl FnMut(PageRequest) -> Result<Page<T>, E>) -> Result<Vec<T>, E> {
    let mut items = Vec::new();
    let mut request = PageRequest::new(Some(0), Some(MAX_PER_PAGE));
    loop {
        let page = fetch(request)?;
        let last = page.items.len() < MAX_PER_PAGE as usize;
        items.extend(page.items);
        if last {
            return Ok(items);
        }
        request.page += 1;
    }
}

/// One page of results and, when asked for, the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub request: PageRequest,
    pub total: i64,
}
